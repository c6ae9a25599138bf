"""How a provider call can fail, beyond `PermanentSendError`, and the shared HTTP classification.

Four outcomes, so the activity can react to each the right way:

* `PermanentSendError` (from `base`): no retry fixes it (a bad number, a forbidden text).
* `ChannelPaused`: the provider refuses *us* (no funds, bad credentials). Retrying burns attempts
  and alarms nobody, so the integrator pauses the channel and alerts a human instead.
* `RateLimited`: transient, retry after `retry_after` seconds (when the provider says so).
* `ProviderUnavailable`: transient (transport error, 5xx, provider's internal error).
  `maybe_accepted` says whether the provider may have taken the message anyway (a read timeout
  after the request went out, a 500/502, an error code we don't know): the retry must go to the
  *same* provider, which deduplicates. `answered` says the provider finished with the request (it
  answered 500/502 or an unknown error), so a status lookup right now is conclusive; after a
  timeout it may still be working on it, and only the later retry may look.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, Protocol

import httpx

from renewals.channels.base import PermanentSendError
from renewals.channels.http_client import http_client
from renewals.phones import InvalidPhone, to_e164
from renewals.privacy import mask_phone


class ErrorType(StrEnum):
    """Error names a human understands; they end up as `ApplicationError.type` and in the outbox."""

    INVALID_PHONE = "InvalidPhone"
    INVALID_RECIPIENT = "InvalidRecipient"
    FORBIDDEN_TEXT = "ForbiddenText"
    STOP_LISTED = "StopListed"
    NOT_ALLOWED_BY_RECIPIENT = "NotAllowedByRecipient"
    INVALID_EMAIL = "InvalidEmail"
    RECIPIENT_REFUSED = "RecipientRefused"
    MESSAGE_REJECTED = "MessageRejected"
    INVALID_REQUEST = "InvalidRequest"
    INSUFFICIENT_FUNDS = "InsufficientFunds"
    AUTH_FAILED = "AuthFailed"
    RATE_LIMITED = "RateLimited"
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"


class ChannelPaused(Exception):
    """The provider refuses the account (funds, credentials): pause the channel and alert."""

    def __init__(self, error_type: str, message: str, provider: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.provider = provider


class TransientSendError(Exception):
    """Retry with backoff. Base of `RateLimited` and `ProviderUnavailable`."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        provider: str = "",
        retry_after: float | None = None,
        maybe_accepted: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.provider = provider
        self.retry_after = retry_after
        self.maybe_accepted = maybe_accepted


class RateLimited(TransientSendError):
    """The provider throttles us; `retry_after` (seconds) is its hint, or None when it gave none."""

    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None) -> None:
        super().__init__(ErrorType.RATE_LIMITED, message, provider=provider, retry_after=retry_after)


class ProviderUnavailable(TransientSendError):
    """Transport error, 5xx or the provider's own 'internal error': try again later."""

    def __init__(
        self, message: str, *, provider: str = "", maybe_accepted: bool = False, answered: bool = False
    ) -> None:
        super().__init__(
            ErrorType.PROVIDER_UNAVAILABLE, message, provider=provider, maybe_accepted=maybe_accepted
        )
        self.answered = answered


# Transport errors raised before a single byte of the request reached the provider: it cannot
# have accepted anything. Everything else (read timeout, dropped connection) is ambiguous.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def transport_error(provider: str, exc: httpx.TransportError) -> ProviderUnavailable:
    """Classify an httpx transport failure; the message names the exception class, never the URL."""
    return ProviderUnavailable(
        f"{provider}: {type(exc).__name__}",
        provider=provider,
        maybe_accepted=not isinstance(exc, _NOT_SENT),
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the delta form; the HTTP-date form is rare for APIs and ignored)."""
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def http_status_error(provider: str, response: httpx.Response) -> Exception | None:
    """The generic meaning of an HTTP status for a provider API; None for 2xx and for 4xx the
    caller must read from the body (400/404/409/422 mean different things per provider)."""
    status = response.status_code
    if status < 400:
        return None
    if status in (401, 403):
        return ChannelPaused(ErrorType.AUTH_FAILED, f"{provider}: HTTP {status}", provider)
    if status == 402:
        return ChannelPaused(ErrorType.INSUFFICIENT_FUNDS, f"{provider}: HTTP 402", provider)
    if status == 429:
        return RateLimited(
            f"{provider}: HTTP 429", provider=provider, retry_after=retry_after_seconds(response)
        )
    if status == 408 or status >= 500:
        # 504 (and 408) come from a proxy that gave up waiting: the provider may still be working on
        # it. 500/502 are answers from a provider that failed somewhere after taking the request: it
        # may have kept the message. 503 (and the rest) means it turned the request away.
        return ProviderUnavailable(
            f"{provider}: HTTP {status}",
            provider=provider,
            maybe_accepted=status in (408, 500, 502, 504),
            answered=status in (500, 502),
        )
    return None


def dialable(raw: str) -> str:
    """`raw` in E.164 for a provider, or `PermanentSendError(InvalidPhone)` with the number masked."""
    try:
        return to_e164(raw)
    except InvalidPhone:
        raise PermanentSendError(
            ErrorType.INVALID_PHONE, f"not a valid phone number: {mask_phone(raw)}"
        ) from None


async def answered(provider: str, sending: Awaitable[httpx.Response]) -> httpx.Response:
    """The provider's HTTP response; its transport failure or a status with a generic meaning raised
    as what it means (see `transport_error`, `http_status_error`)."""
    try:
        response = await sending
    except httpx.TransportError as exc:
        raise transport_error(provider, exc) from None
    error = http_status_error(provider, response)
    if error is not None:
        raise error
    return response


def json_object(
    provider: str, response: httpx.Response, unreadable: Callable[[str], Exception] | None = None
) -> dict[str, Any]:
    """The response's body as a JSON object; anything else is `unreadable(what)` (by default: the
    provider is unavailable, nothing was accepted)."""
    fail = unreadable or (lambda what: ProviderUnavailable(f"{provider}: {what}", provider=provider))
    try:
        body = response.json()
    except json.JSONDecodeError:
        raise fail("answer is not JSON") from None
    if not isinstance(body, dict):
        raise fail("unexpected answer")
    return body


class HttpApiConfig(Protocol):
    @property
    def base_url(self) -> str: ...

    @property
    def timeout_seconds(self) -> float: ...

    @property
    def connect_timeout_seconds(self) -> float: ...


def api_client(config: HttpApiConfig, client: httpx.AsyncClient | None) -> tuple[httpx.AsyncClient, str]:
    """The HTTP client an adapter talks through (a test's, or one with the config's timeouts), and
    the API's base URL without a trailing slash."""
    timeout = httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds)
    return client or http_client(timeout), config.base_url.rstrip("/")
