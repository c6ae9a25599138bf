"""The VK Callback API (https://dev.vk.com/ru/api/callback/getting-started): VK POSTs one JSON event
per request — `{"type", "object", "group_id", "event_id", "v", "secret"}` — to the server set in the
community's «Управление → Работа с API → Callback API».

- `confirmation` (the handshake when the server is added): answered with the community's
  confirmation string as plain text, for our community only.
- Every other event must carry the server's `secret`, compared in constant time; VK's answer is a
  plain `ok` (anything else, VK sends the event again), so an event we cannot use is answered `ok`
  too — and logged.
- `message_reply` (our community's message is in the dialogue) → `message_delivered`, found by its
  `random_id` (derived from our key) or else its `id` (what `messages.send` answered).
- `message_read` (the user read the dialogue up to `read_message_id`) → `vk_read` for the latest of
  our messages to that user at or before the mark.
- `message_new` (the user wrote to the community): «СТОП»/"STOP" → the opt-out, as an SMS STOP;
  anything else → a reply (`vk_read`: the message reached them). It reaches the journey that wrote
  to that user last.
- `message_deny` (the user forbade the community's messages) → an opt-out of VK: the user's VK id
  joins the do-not-contact list, so no journey writes to it on VK again (each such send is
  `suppressed`), while SMS, e-mail and calls go on — the user refused VK, not the insurer.
  `message_allow` is acknowledged and changes nothing: a STOP elsewhere is not undone by it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from renewals.channels.vk import vk_random_id
from renewals.delivery import OptOuts
from renewals.privacy import mask_vk
from renewals.webhooks.native.common import NativeSettings, bounded_body, deliver, latest_messages, log
from renewals.webhooks.payloads import Callback, SmsCallback, VkCallback
from renewals.webhooks.service import STOP_WORDS, WebhookService

PATH = "/webhooks/native/vk"
OK = "ok"
DENY_REASON = "vk: message_deny"
Model = TypeVar("Model", bound=BaseModel)


class VkEvent(BaseModel):
    """The envelope of every Callback API request (the fields we read; VK adds others)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")  # VK's event names; nothing else reaches a log
    group_id: int
    event_id: str | None = Field(None, max_length=100)
    secret: str | None = Field(None, max_length=200)
    object: dict[str, Any] = {}


class VkMessage(BaseModel):
    """A VK message object (`message_reply`, `message_new`'s `message`): its id and who is who."""

    model_config = ConfigDict(extra="ignore")

    id: int = 0
    peer_id: int = 0
    from_id: int = 0
    random_id: int = 0  # ours, on the community's own messages (`message_reply`)
    text: str = Field("", max_length=10_000)


class VkRead(BaseModel):
    model_config = ConfigDict(extra="ignore")

    from_id: int = 0
    peer_id: int = 0
    read_message_id: int


class VkDeny(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: int


class VkTextReply(SmsCallback):
    """A client's words in the community chat that are a STOP: the service reads a STOP word in a text
    reply as the opt-out (`renewals.webhooks.service.action_for`), and VK's STOP is the same STOP."""


def router(service: WebhookService) -> APIRouter:
    routes = APIRouter(tags=["webhooks: providers' own formats"])

    @routes.post(
        PATH,
        response_class=PlainTextResponse,
        summary="VK Callback API: confirmation, message_reply / message_read / message_new / message_deny",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
    )
    async def vk_callback(request: Request, settings: NativeSettings) -> PlainTextResponse:
        event = _parse(await bounded_body(request))
        if settings.vk_group_id is None or event.group_id != settings.vk_group_id:
            log.warning("rejected vk callback: not our community")
            raise HTTPException(status_code=403, detail="vk: not this service's community")
        secret = settings.vk_secret.get_secret_value() if settings.vk_secret else ""
        if event.type == "confirmation":
            # VK shows the confirmation string to the community's admins anyway; a secret, if sent, must match
            if event.secret is not None and not _same(event.secret, secret):
                raise HTTPException(status_code=401, detail="vk: bad secret")
            if not settings.vk_confirmation:
                raise HTTPException(status_code=404, detail="vk: no confirmation string configured")
            return PlainTextResponse(settings.vk_confirmation)
        if not secret or event.secret is None or not _same(event.secret, secret):
            log.warning("rejected vk %s callback: bad or missing secret", event.type)
            raise HTTPException(status_code=401, detail="vk: bad or missing secret")
        handler = HANDLERS.get(event.type)
        if handler is None:
            log.info("vk %s event: not one the journeys use", event.type)
            return PlainTextResponse(OK)
        try:
            await handler(service, event)
        except ValidationError:  # an id the callback models refuse (blank, control characters, too long)
            raise HTTPException(status_code=400, detail=f"vk: {event.type} with an invalid id") from None
        return PlainTextResponse(OK)

    return routes


def _parse(body: bytes) -> VkEvent:
    try:
        return VkEvent.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HTTPException(status_code=400, detail="vk: not a Callback API event") from None


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _object(model: type[Model], data: dict[str, Any], what: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError:
        raise HTTPException(status_code=400, detail=f"vk: {what} without its fields") from None


def _event_id(event: VkEvent, *parts: object) -> str:
    """VK's own `event_id` (the same on each of its retries), else a hash of the event's type and ids
    (they include the user's VK id, which is personal data: the receipts table and the log keep the
    hash only)."""
    if event.event_id:
        return f"vk-{event.event_id}"
    return "vk-" + hashlib.sha256(":".join([event.type, *map(str, parts)]).encode()).hexdigest()[:32]


async def _signal(service: WebhookService, event: VkEvent, callback: Callback) -> None:
    await deliver(service, f"vk {event.type}", "vk", callback)


async def message_reply(service: WebhookService, event: VkEvent) -> None:
    """Our message by its `random_id` — the adapter derives it from our key (`vk_random_id`), so this
    finds the outbox row even when VK's event overtakes `messages.send`'s answer (the row is still
    pending, without VK's message id) — else by the message id the outbox recorded."""
    message = _object(VkMessage, event.object, "message_reply")
    if not message.id:
        raise HTTPException(status_code=400, detail="vk: message_reply without its id")
    ours = None
    if message.random_id and message.peer_id:
        sent = await latest_messages(service, "vk", (str(message.peer_id),), limit=50)
        ours = next((m.key for m in sent if vk_random_id(m.key) == message.random_id), None)
    event_id = _event_id(event, message.id)
    callback = VkCallback(event_id=event_id, message_id=ours or str(message.id), type="delivered")
    await _signal(service, event, callback)


async def message_read(service: WebhookService, event: VkEvent) -> None:
    read = _object(VkRead, event.object, "message_read")
    user = read.from_id or read.peer_id
    for sent in await latest_messages(service, "vk", (str(user),)):
        provider_id = sent.provider_message_id
        if provider_id is None or not provider_id.isdigit() or int(provider_id) <= read.read_message_id:
            event_id = _event_id(event, user, read.read_message_id)
            await _signal(service, event, VkCallback(event_id=event_id, message_id=sent.key, type="read"))
            return
    log.warning("vk message_read from %s: no message of ours it covers", mask_vk(str(user)))


async def message_new(service: WebhookService, event: VkEvent) -> None:
    raw = event.object.get("message", event.object)  # API ≥ 5.103 wraps it: {"message", "client_info"}
    message = _object(VkMessage, raw if isinstance(raw, dict) else {}, "message_new")
    user = message.from_id or message.peer_id
    latest = await latest_messages(service, "vk", (str(user),))
    if not latest:
        log.warning("vk message_new from %s: we never wrote to them", mask_vk(str(user)))
        return
    event_id = _event_id(event, user, message.id)
    callback: Callback
    if message.text.strip().upper() in STOP_WORDS:
        callback = VkTextReply(
            event_id=event_id, message_id=latest[0].key, type="reply", text=message.text.strip()
        )
    else:
        callback = VkCallback(event_id=event_id, message_id=latest[0].key, type="reply")
    await _signal(service, event, callback)


async def message_deny(service: WebhookService, event: VkEvent) -> None:
    deny = _object(VkDeny, event.object, "message_deny")
    user = str(deny.user_id)
    latest = await latest_messages(service, "vk", (user,))
    journey = latest[0].journey_id if latest else None
    await OptOuts(service.db).add([user], DENY_REASON, journey)  # a repeat adds nothing
    if latest:  # and the journey notes it (`vk_denied`), once per event
        denied = VkCallback(event_id=_event_id(event, user), message_id=latest[0].key, type="denied")
        await _signal(service, event, denied)
    log.info(
        "vk user %s denied the community's messages: VK opted out (journey %s)", mask_vk(user), journey or "-"
    )


HANDLERS = {
    "message_reply": message_reply,
    "message_read": message_read,
    "message_new": message_new,
    "message_deny": message_deny,
}
