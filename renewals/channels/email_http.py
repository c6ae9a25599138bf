"""E-mail through an HTTP transactional API in the shape of Unisender Go (`POST …/email/send.json`).

Why an API beside SMTP: SMTP has no idempotency key, so a send cut off after the server's final 250
and before our commit is sent again (at-least-once, `renewals.channels.email`), and SMTP reports
nothing back. Unisender Go's Web API takes an `idempotence_key` (API v1.69, 09.01.2025) and reports
delivery, opens, bounces and unsubscribes to a webhook (`renewals.webhooks.email_api`), which is how
the robot's «не открыл письмо» condition learns of an open.

One id per message, derived from the dedup key (the SHA-256 prefix `message_id_for` also puts in the
SMTP Message-ID; the key itself names a policy and never leaves us):

* `idempotence_key`: the provider sends one message per key, however often the request comes;
* the recipient's `metadata.renewals_id`: every status callback carries it back, and the outbox
  keeps the same id as the row's `provider_message_id`, so a callback finds its journey;
* what `send` returns (the delivery's message id).

Exactly-once: every attempt at a message sends the same key. An ambiguous failure (read timeout,
500/502/504, an answer we can't read) raises `ProviderUnavailable(maybe_accepted=True)`; the failover
chain keeps the message pinned to this provider (it cannot `find`: the API has no per-message status
query), the activity's retry sends the same request with the same key, and the provider drops the
repeat. A crash between the API's 200 and our commit leaves the outbox row pending and pinned here;
the recovered attempt is that same retry. So within the provider's idempotency window a message is
sent at most once and, because we retry until the API answers, exactly once. Beyond the window (a
retry days later) a repeat is possible; our retries normally settle within minutes.

Failures: 401/403 pause the channel (bad key, no rights), 429 backs off, 5xx retries; a malformed
address is refused before any call, and the API's per-recipient `failed_emails` answer says why it
did not send: `invalid` (permanent InvalidEmail), `permanent_unavailable` (its suppression list:
an earlier hard bounce or complaint), `unsubscribed`, or `temporary_unavailable` (retried later, on
this provider: another one would meet the same mailbox). A 400 is our request's fault: permanent.

NDA: the HTML part is the escaped text (no links of ours). `track_read` lets the provider add its open
pixel; link tracking stays off; the provider's unsubscribe link stays unless `skip_unsubscribe`
(which Unisender Go allows only on request) — an unsubscribe comes back as an e-mail opt-out.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.email import html_body, parse_address
from renewals.channels.errors import (
    ChannelPaused,
    ErrorType,
    ProviderUnavailable,
    TransientSendError,
    answered,
    api_client,
    json_object,
)
from renewals.privacy import mask_address

UNISENDER_GO_URL = "https://go1.unisender.ru/ru/transactional/api/v1"  # go2.… for the second data centre
SEND_PATH = "/email/send.json"
API_KEY_HEADER = "X-API-KEY"
METADATA_KEY = "renewals_id"  # the recipient metadata field our message id travels in
RECIPIENT_DEFERRED = "RecipientTemporarilyUnavailable"
_WRONG_DATA_CENTRE = 114  # "User with id … not found": the key belongs to the other server


class EmailApiConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = UNISENDER_GO_URL
    api_key: SecretStr  # the user's or the project's API key; it also signs the webhooks
    sender_address: str  # a sender on a domain verified in the provider's account
    sender_name: str = ""
    default_subject: str = "Продление полиса"
    track_read: bool = True  # the provider's open pixel: what reports `email_opened`
    skip_unsubscribe: bool = False  # leave out the provider's unsubscribe link (needs its permission)
    language: str = "ru"  # `global_language`: the unsubscribe page's language
    deferred_retry_seconds: float = 3600.0  # `temporary_unavailable`: when to try that mailbox again
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0


def email_api_id(dedup_key: str) -> str:
    """Our id of a message at the provider (idempotency key, metadata, delivery id): 32 hex digits
    of the key's SHA-256 — stable, and without the key, which names a policy."""
    return hashlib.sha256(dedup_key.encode()).hexdigest()[:32]


def classify_api_error(provider: str, response: httpx.Response) -> Exception:
    """A 4xx the generic HTTP classification left to us (`errors.http_status_error` took 401, 402,
    403, 408, 429, 5xx) → the exception the activity reacts to."""
    status = response.status_code
    code, message = _error_of(response)
    what = f"{provider}: HTTP {status}" + (f", error {code}" if code is not None else "")
    if message:
        what += f" ({message[:200]})"
    if status == 404:  # "method not found": base_url points somewhere else
        return ChannelPaused(ErrorType.INVALID_REQUEST, f"{what}; check base_url", provider)
    if code == _WRONG_DATA_CENTRE:
        return ChannelPaused(ErrorType.AUTH_FAILED, f"{what}; the key is for the other data centre", provider)
    if status == 413:
        return PermanentSendError(ErrorType.MESSAGE_REJECTED, what)
    return PermanentSendError(ErrorType.INVALID_REQUEST, what)


def _error_of(response: httpx.Response) -> tuple[int | None, str]:
    """`{"status": "error", "code": …, "message": …}` (a list of them, too), as far as it reads."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, ""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message") or "")


def recipient_refusal(provider: str, reason: str, retry_after: float | None = None) -> Exception:
    """Why the provider did not send to our one recipient (`failed_emails[address]`)."""
    message = f"{provider}: recipient {reason}"
    if reason == "invalid":
        return PermanentSendError(ErrorType.INVALID_EMAIL, message)
    if reason == "permanent_unavailable":  # the provider's suppression list: hard bounce, complaint
        return PermanentSendError(ErrorType.RECIPIENT_REFUSED, message)
    if reason == "unsubscribed":
        return PermanentSendError(ErrorType.NOT_ALLOWED_BY_RECIPIENT, message)
    # temporary_unavailable (or a reason we don't know): nothing went out; the mailbox may recover.
    return TransientSendError(RECIPIENT_DEFERRED, message, provider=provider, retry_after=retry_after)


class EmailApiProvider(SingleProvider):
    """E-mail via Unisender Go's Web API (or any service speaking it): deduplicates by key, cannot
    reconcile (no per-message status query), reports back through its webhook."""

    def __init__(
        self, config: EmailApiConfig, client: httpx.AsyncClient | None = None, name: str = "unisender"
    ) -> None:
        self.config = config
        self.name = name
        self._client, self._base = api_client(config, client)

    async def aclose(self) -> None:
        await self._client.aclose()

    def payload(self, request: SendRequest) -> dict[str, Any]:
        """The request body exactly as it goes out (tests inspect it)."""
        address = parse_address(request.recipient).addr_spec
        message_id = email_api_id(request.dedup_key)
        message: dict[str, Any] = {
            "recipients": [{"email": address, "metadata": {METADATA_KEY: message_id}}],
            "subject": request.subject or self.config.default_subject,
            "from_email": self.config.sender_address,
            "body": {"plaintext": request.text, "html": html_body(request.text)},
            "track_read": int(self.config.track_read),
            "track_links": 0,
            "skip_unsubscribe": int(self.config.skip_unsubscribe),
            "global_language": self.config.language,
        }
        if self.config.sender_name:
            message["from_name"] = self.config.sender_name
        return {"idempotence_key": message_id, "message": message}

    async def send(self, request: SendRequest) -> str:
        payload = self.payload(request)
        address = payload["message"]["recipients"][0]["email"]
        headers = {API_KEY_HEADER: self.config.api_key.get_secret_value(), "Accept": "application/json"}
        response = await answered(
            self.name, self._client.post(self._base + SEND_PATH, json=payload, headers=headers)
        )
        if response.status_code >= 400:
            raise classify_api_error(self.name, response)
        body = json_object(self.name, response, self._unreadable)
        if body.get("status") != "success":
            raise self._unreadable(f"status {str(body.get('status'))[:40]!r}")
        failed = {str(k).lower(): str(v) for k, v in (body.get("failed_emails") or {}).items()}
        reason = failed.get(address.lower())
        # "duplicate": the address was given twice; with one recipient only a repeat can say so.
        if reason is not None and reason != "duplicate":
            raise recipient_refusal(self.name, reason, self.config.deferred_retry_seconds)
        accepted = {str(e).lower() for e in body.get("emails") or []}
        if reason is None and address.lower() not in accepted:
            raise self._unreadable("the answer names neither our recipient nor why")
        return str(payload["idempotence_key"])

    def _unreadable(self, what: str) -> ProviderUnavailable:
        """A 200 we can't read may be an accept: retry here, with the same key."""
        return ProviderUnavailable(
            f"{self.name}: {what}", provider=self.name, maybe_accepted=True, answered=True
        )

    def __repr__(self) -> str:
        sender = mask_address("email", self.config.sender_address)
        return f"EmailApiProvider({self._base}, from {sender})"
