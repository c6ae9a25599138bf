"""Unisender Go's status webhook (`POST /webhooks/email-api`): deliveries, opens, bounces and
unsubscribes of the messages `renewals.channels.email_http` sent, in the provider's own format.

Authentication is the provider's: the top-level `auth` is the MD5 of the raw body with that value
replaced by the API key of the user or project the webhook belongs to (Unisender Go's "callback
format"; the key is `RENEWALS_WEBHOOK_SECRETS["email_api"]`, the same value as
`RENEWALS_EMAIL_API__API_KEY`). It is checked on the bounded raw bytes, found there by a pattern,
before anything is parsed; the comparison never depends on how the provider serialised the JSON.

Both payload shapes are read: the default `{"auth", "events_by_user": [{"events": [{"event_name",
"event_data": {…}}]}]}` and the "single event" option's flat `{"auth", "event_name", …}`. Only
`transactional_email_status` events matter; each names its message by the recipient metadata
`renewals_id` our adapter set (= the outbox row's `provider_message_id`). What each status does:

* `delivered` → `message_delivered` on the journey (`email:<touchpoint>`);
* `opened`, `clicked` (a click implies an open) → `email_opened` on the journey;
* `hard_bounced` → `message_undelivered` on the journey, and the address goes on the do-not-contact
  list (`email_hard_bounced`): no later e-mail is tried there;
* `unsubscribed`, `spam` (a complaint) → the address goes on the do-not-contact list
  (`email_unsubscribed`, `email_spam_complaint`): e-mail only, the journey's SMS, VK and calls go on;
* `sent`, `soft_bounced` (the provider retries), `subscribed`, anything else: acknowledged, nothing done.

Exactly once: the provider gives callbacks no id and may repeat them, and a message may be opened
many times, so each journey event's id is `unisender:<renewals_id>:<delivered|opened|bounced>` and
`WebhookService` turns each into at most one signal. A batch whose message is not in the outbox yet
(the callback outran the send's commit) answers 404 and the provider retries it; that message's later
events in the batch wait for the retry (so a journey sees its delivery before its open), the other
messages' events are done now and are duplicates then.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import Client

from renewals.channels.email_http import METADATA_KEY
from renewals.db.database import Database
from renewals.delivery import OptOuts
from renewals.privacy import mask_email
from renewals.webhooks.limits import read_body
from renewals.webhooks.payloads import EmailCallback, shown
from renewals.webhooks.service import ClaimInFlight, UnknownJourney, WebhookService

log = logging.getLogger(__name__)
ROUTE = "/webhooks/email-api"
SOURCE = "email"  # the channel and the receipts' source: the same namespace as /webhooks/email
SECRET = "email_api"  # its key in the webhook secrets: the provider's API key
# A batch of events, a few hundred bytes each; nothing larger is read (the service's `BodyLimit`
# middleware, renewals/webhooks/limits.py, gives this route this limit instead of its 64 KiB).
MAX_BODY = 1024 * 1024
STATUS_EVENT = "transactional_email_status"
# The `auth` field: 32 hex digits of MD5, found on the raw bytes before anything is parsed.
_AUTH = re.compile(rb'"auth"\s*:\s*"([0-9a-fA-F]{32})"')
_OUR_ID = re.compile(r"[0-9a-f]{32}")
JOURNEY_EVENTS: dict[str, Literal["delivered", "opened", "bounced"]] = {
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "opened",
    "hard_bounced": "bounced",
}
OPT_OUTS = {
    "hard_bounced": "email_hard_bounced",
    "unsubscribed": "email_unsubscribed",
    "spam": "email_spam_complaint",
}


def sign(body_with_key: bytes) -> str:
    """The `auth` of a body serialised with the API key in its `auth` field (the fake provider and
    the tests sign this way; the provider does the same)."""
    return hashlib.md5(body_with_key).hexdigest()


def authentic(body: bytes, api_key: str | None) -> bool:
    """True only with a configured key and an `auth` that is the MD5 of the body with that value
    replaced by the key."""
    if not api_key:
        return False
    found = _AUTH.search(body)
    if found is None:
        return False
    expected = sign(body.replace(found.group(1), api_key.encode()))
    return hmac.compare_digest(found.group(1).lower(), expected.encode())


class DeliveryInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    delivery_status: str | None = None  # e.g. err_user_unknown, err_mailbox_full
    destination_response: str | None = None  # the receiving server's answer (may quote the address)


class EmailStatus(BaseModel):
    """One `transactional_email_status` event's data (the fields we read)."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    job_id: str | None = Field(None, max_length=200)
    email: str = Field(max_length=254)
    status: str = Field(max_length=40)
    event_time: str | None = Field(None, max_length=40)  # "YYYY-MM-DD hh:mm:ss", UTC
    metadata: dict[str, Any] = {}
    delivery_info: DeliveryInfo | None = None

    @property
    def message_id(self) -> str | None:
        """Our id of the message (`email_api_id`: 32 hex digits), or None: not one we sent."""
        value = self.metadata.get(METADATA_KEY)
        return value if isinstance(value, str) and _OUR_ID.fullmatch(value) else None


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_name: str
    event_data: dict[str, Any] = {}


class _User(BaseModel):
    model_config = ConfigDict(extra="ignore")

    events: list[_Event] = []


class _Batch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    events_by_user: list[_User] | None = None
    event_name: str | None = None  # the "single event" shape: the event's data at the top level


def status_events(body: bytes) -> list[EmailStatus]:
    """The status events of a webhook body, in either shape; `ValidationError` if it is neither."""
    batch = _Batch.model_validate_json(body)
    if batch.events_by_user is None:
        if batch.event_name != STATUS_EVENT:
            return []
        return [EmailStatus.model_validate_json(body)]
    return [
        EmailStatus.model_validate(event.event_data)
        for user in batch.events_by_user
        for event in user.events
        if event.event_name == STATUS_EVENT
    ]


class EventOutcome(BaseModel):
    status: Literal["accepted", "duplicate", "journey_finished", "opted_out", "ignored"]
    event: str  # what the event was about: `<status>` and our message id, shortened
    journey_id: str | None = None


class EmailApiResult(BaseModel):
    outcomes: list[EventOutcome]


def email_api_router(db: Database, client: Client, secrets: Mapping[str, str]) -> APIRouter:
    """The route, authenticated with `secrets["email_api"]` (the provider's API key)."""
    router = APIRouter(tags=["webhooks"])
    service = WebhookService(db, client)
    opt_outs = OptOuts(db)

    async def apply(event: EmailStatus) -> list[EventOutcome]:
        message_id = event.message_id
        label = f"{event.status} {shown(message_id or event.job_id or '-', 24)}"
        outcomes: list[EventOutcome] = []
        journey_id: str | None = None
        kind = JOURNEY_EVENTS.get(event.status)
        if kind is not None and message_id is not None:
            callback = EmailCallback(
                event_id=f"unisender:{message_id}:{kind}", message_id=message_id, type=kind
            )
            result = await service.handle(SOURCE, callback)
            journey_id = result.journey_id
            outcomes.append(EventOutcome(status=result.status, event=label, journey_id=journey_id))
        reason = OPT_OUTS.get(event.status)
        if reason is not None:
            if journey_id is None and message_id is not None:
                try:
                    target = await service.resolve(SOURCE, _named(message_id), datetime.now(UTC).date())
                    journey_id = target.journey_id
                except UnknownJourney:
                    journey_id = None  # an address of ours all the same: listed without a journey
            await opt_outs.add([event.email], reason, journey_id)
            log.info("e-mail %s of %s: %s listed", event.status, journey_id or "-", mask_email(event.email))
            outcomes.append(EventOutcome(status="opted_out", event=label, journey_id=journey_id))
        return outcomes or [EventOutcome(status="ignored", event=label)]

    @router.get(ROUTE, summary="Unisender Go checks the webhook URL with a GET when it is set")
    async def probe() -> dict[str, str]:
        return {"status": "ok"}

    @router.post(
        ROUTE,
        response_model=EmailApiResult,
        summary="Unisender Go: delivered, opened, bounced, unsubscribed (its own format, MD5 `auth`)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
    )
    async def receive(request: Request) -> EmailApiResult:
        """Bounded read, the provider's signature on the raw bytes, only then the parser."""
        body = await read_body(request, MAX_BODY)
        if not authentic(body, secrets.get(SECRET)):
            log.warning("rejected e-mail API callback: bad or missing auth")
            raise HTTPException(status_code=401, detail="email_api: bad or missing auth")
        try:
            events = status_events(body)
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_input=False)) from None
        outcomes: list[EventOutcome] = []
        retry: HTTPException | None = None
        waiting: set[str | None] = set()  # messages whose earlier event must be retried first
        for event in events:
            if event.message_id in waiting:
                continue  # keep each message's events in order: its retry brings them again
            try:
                outcomes += await apply(event)
            except UnknownJourney as unknown:  # not in the outbox yet: the provider retries the batch
                retry = retry or HTTPException(status_code=404, detail=str(unknown))
                waiting.add(event.message_id)
            except ClaimInFlight as busy:
                retry = retry or HTTPException(
                    status_code=503, detail=str(busy), headers={"Retry-After": "30"}
                )
                waiting.add(event.message_id)
        if retry is not None:
            raise retry
        log.info("e-mail API callback: %s", ", ".join(f"{o.event} → {o.status}" for o in outcomes) or "empty")
        return EmailApiResult(outcomes=outcomes)

    return router


def _named(message_id: str) -> EmailCallback:
    """A callback that only names a message, for `WebhookService.resolve`."""
    return EmailCallback(event_id="resolve", message_id=message_id, type="delivered")
