"""SMS through an HTTP gateway in the shape of SMSC.ru (`/sys/send.php`, `/sys/status.php`).

Dedup: SMSC lets the client choose the message `id` (an integer 1…2^31−1) but does not refuse a
second message with the same id — it sends it again. So the id is derived stably from the dedup key,
and a send that may be a repeat (`request.resumed`: its outbox row existed before this attempt — a
retry, or the recovery of a crashed worker) first asks `/sys/status.php` whether a message with that
id already went to that phone; if so, it returns that id instead of sending again. A first attempt
sends at once: SMSC cannot have a message under a key nobody used before, so the query would only
cost a round trip (`check_before_send=False` turns the query off altogether — only for a gateway
that refuses a repeated id itself). Credentials go in a POST form, never in a URL (httpx logs URLs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.errors import (
    ChannelPaused,
    ErrorType,
    ProviderUnavailable,
    RateLimited,
    answered,
    api_client,
    dialable,
    json_object,
)

SEND_PATH = "/sys/send.php"
STATUS_PATH = "/sys/status.php"
_MESSAGE_NOT_FOUND_STATUS = -3
_STATUS_ERROR_NOT_FOUND = 3


class SmscConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://smsc.ru"
    login: str
    password: SecretStr
    sender: str | None = None  # the registered sender name; None = the account's default
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    check_before_send: bool = True  # reconcile a resumed send by status query (module docstring)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"  # handed to the operator
    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


# SMSC status codes → ours: -1 waiting, 0 passed to the operator, 1 delivered, 2 read, 3 expired,
# 4 link clicked, 20 cannot be delivered, 22 bad number, 23 forbidden, 24 no funds, 25 unreachable.
_STATUS: dict[int, DeliveryStatus] = {
    -1: DeliveryStatus.PENDING,
    0: DeliveryStatus.SENT,
    1: DeliveryStatus.DELIVERED,
    2: DeliveryStatus.DELIVERED,
    4: DeliveryStatus.DELIVERED,
    3: DeliveryStatus.FAILED,
    20: DeliveryStatus.FAILED,
    22: DeliveryStatus.FAILED,
    23: DeliveryStatus.FAILED,
    24: DeliveryStatus.FAILED,
    25: DeliveryStatus.FAILED,
}


class DeliveryReport(BaseModel):
    """One delivery status, from `/sys/status.php` or from the provider's status callback."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    phone: str
    status: DeliveryStatus
    provider_status: int
    error_code: int | None = None


def smsc_message_id(dedup_key: str) -> int:
    """A stable SMSC message id in 1…2^31−1 for a dedup key (first 31 bits of its SHA-256)."""
    value = int.from_bytes(hashlib.sha256(dedup_key.encode()).digest()[:4], "big") & 0x7FFFFFFF
    return value or 1


def normalise_phone(raw: str) -> str:
    """E.164 digits without '+', as SMSC wants; raises `PermanentSendError(InvalidPhone)`."""
    return dialable(raw).lstrip("+")


def to_report(message_id: str, phone: str, provider_status: int, error_code: int | None) -> DeliveryReport:
    return DeliveryReport(
        message_id=message_id,
        phone=phone,
        status=_STATUS.get(provider_status, DeliveryStatus.UNKNOWN),
        provider_status=provider_status,
        error_code=error_code or None,
    )


def parse_status_callback(form: Mapping[str, str]) -> DeliveryReport:
    """SMSC's delivery callback (a POST form: id, phone, status, err, …) → a `DeliveryReport`.

    `message_id` is the id `send` returned (the outbox stores it), so the report finds its row.
    Raises `ValueError` on a form without a numeric id/status, which the webhook answers with 400.
    """
    try:
        message_id = str(int(form["id"]))
        status = int(form["status"])
        error = int(form["err"]) if form.get("err") else None
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not an SMSC status callback: {exc}") from None
    return to_report(message_id, form.get("phone", ""), status, error)


def classify_send_error(provider: str, code: int, text: str) -> Exception:
    """SMSC `error_code` of `/sys/send.php` → the exception the activity reacts to."""
    message = f"{provider}: error {code} ({text})"
    if code == 2:
        return ChannelPaused(ErrorType.AUTH_FAILED, message, provider)
    if code == 3:
        return ChannelPaused(ErrorType.INSUFFICIENT_FUNDS, message, provider)
    if code == 4:  # IP temporarily blocked after too many erroneous requests
        return RateLimited(message, provider=provider, retry_after=60.0)
    if code == 9:  # too many identical requests within a minute
        return RateLimited(message, provider=provider, retry_after=60.0)
    if code in (1, 5):
        return PermanentSendError(ErrorType.INVALID_REQUEST, message)
    if code == 6:
        return PermanentSendError(ErrorType.FORBIDDEN_TEXT, message)
    if code == 7:
        return PermanentSendError(ErrorType.INVALID_PHONE, message)
    if code == 8:  # the number cannot receive messages: stop list, operator block
        return PermanentSendError(ErrorType.STOP_LISTED, message)
    # A code we don't know: SMSC answered, but we can't tell whether it kept the message.
    return ProviderUnavailable(message, provider=provider, maybe_accepted=True, answered=True)


class SmscProvider(SingleProvider):
    """SMS via SMSC.ru (or any gateway speaking its HTTP API); reconciles through its status query."""

    reconciles = True

    def __init__(
        self, config: SmscConfig, client: httpx.AsyncClient | None = None, name: str = "smsc"
    ) -> None:
        self.config = config
        self.name = name
        self._client, self._base = api_client(config, client)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, request: SendRequest) -> str:
        phone = normalise_phone(request.recipient)
        message_id = smsc_message_id(request.dedup_key)
        if self.config.check_before_send and request.resumed:
            existing = await self.status(str(message_id), phone)
            if existing is not None:
                return existing.message_id
        form = self._auth() | {
            "phones": phone,
            "mes": request.text,
            "id": str(message_id),
            "charset": "utf-8",
        }
        if self.config.sender:
            form["sender"] = self.config.sender
        body = await self._post(SEND_PATH, form)
        if "error_code" in body:
            raise classify_send_error(self.name, int(body["error_code"]), str(body.get("error", "")))
        return str(body.get("id", message_id))

    async def lookup(self, request: SendRequest) -> str | None:
        """The message id if this provider already has the message (for failover reconciliation)."""
        report = await self.status(
            str(smsc_message_id(request.dedup_key)), normalise_phone(request.recipient)
        )
        return report.message_id if report else None

    async def status(self, message_id: str, phone: str) -> DeliveryReport | None:
        """`/sys/status.php` for one message; None when SMSC does not know it."""
        body = await self._post(STATUS_PATH, self._auth() | {"id": message_id, "phone": phone})
        if "error_code" in body:
            code = int(body["error_code"])
            if code == _STATUS_ERROR_NOT_FOUND:
                return None
            raise classify_send_error(self.name, code, str(body.get("error", "")))
        status = int(body.get("status", _MESSAGE_NOT_FOUND_STATUS))
        if status == _MESSAGE_NOT_FOUND_STATUS:
            return None
        return to_report(message_id, phone, status, int(body.get("err") or 0))

    def _auth(self) -> dict[str, str]:
        return {"login": self.config.login, "psw": self.config.password.get_secret_value(), "fmt": "3"}

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        response = await answered(self.name, self._client.post(self._base + path, data=form))
        if response.status_code >= 400:
            raise ProviderUnavailable(f"{self.name}: HTTP {response.status_code}", provider=self.name)
        # A 2xx we can't read (SMSC answers "OK - 1 SMS, ID - …" when it ignores fmt=3) may be an accept.
        return json_object(self.name, response, self._unreadable)

    def _unreadable(self, what: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{self.name}: {what}", provider=self.name, maybe_accepted=True, answered=True
        )
