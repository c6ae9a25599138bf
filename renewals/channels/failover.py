"""Send through the first provider of an ordered list that works, never sending one message twice.

The rule that keeps it safe: **a message is pinned to the provider that may have it.**

* Before asking provider P, the key is pinned to P (`FailoverLedger.pin`). If P then fails in a way
  that proves it did not take the message, the pin is released and the next provider is tried:
  it refused us (`ChannelPaused`), the connection never opened, a 503, its own "unavailable".
* A permanent recipient error (`PermanentSendError`) is raised as is: another provider would reject
  the same number. A rate limit is raised too: back off, don't spread the load.
* P answered, but not whether it kept the message (HTTP 500/502, an error code we don't know:
  `ProviderUnavailable(maybe_accepted=True, answered=True)`): ask P (`find`, SMSC's status query)
  at once. It has the message → that is the delivery; it has none → move on; it can't say → keep the pin.
* No answer at all (read timeout, dropped connection, 504): keep the pin and raise. P may still be
  working on the request, so a lookup now proves nothing; the activity's retry comes back to P only.
* A retry that finds a pin (an earlier attempt, maybe cut short by a crash) goes to the pinned
  provider only; it may move on only when that provider proves by `find` that it has nothing.

"No funds" or "auth failed" from a provider pauses *that provider* for `pause_seconds` (in this
process) with one alert per pause (the log and the configured destination, `renewals.alerts`), and
sends go to the others meanwhile. When every provider refuses
us, `deliver` raises `ChannelPaused`, so the activity pauses the whole channel and alerts too.

The pin lives in a `FailoverLedger`: `InMemoryLedger` for tests, `renewals.outbox.OutboxLedger`
(the outbox row's `provider` column, durable and shared by every worker) in production.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from renewals.activity_io import SendRequest
from renewals.alerts import Alert, Alerts, current_alerts
from renewals.channels.base import Delivery, PermanentSendError, Provider
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.privacy import scrub_exception

log = logging.getLogger(__name__)


class FailoverLedger(Protocol):
    """Which provider may hold the message with a given dedup key."""

    async def pinned(self, key: str) -> str | None: ...

    async def pin(self, key: str, provider: str) -> None: ...

    async def release(self, key: str, provider: str) -> None:
        """Forget the pin if it still names `provider` (it proved it has nothing)."""
        ...


class InMemoryLedger:
    """A per-process ledger, for tests (the outbox is the durable one)."""

    def __init__(self) -> None:
        self._pins: dict[str, str] = {}

    async def pinned(self, key: str) -> str | None:
        return self._pins.get(key)

    async def pin(self, key: str, provider: str) -> None:
        self._pins[key] = provider

    async def release(self, key: str, provider: str) -> None:
        if self._pins.get(key) == provider:
            del self._pins[key]


class AllProvidersFailed(ProviderUnavailable):
    """Every provider failed without taking the message: transient, the activity retries."""


def _proves_not_accepted(exc: Exception) -> bool:
    """This attempt's failure proves the provider did not take the message in this attempt."""
    return isinstance(exc, ChannelPaused) or (isinstance(exc, ProviderUnavailable) and not exc.maybe_accepted)


class FailoverProvider:
    """A `Provider` over several providers of one channel, tried in order."""

    reconciles = True  # through the provider the message is pinned to

    def __init__(
        self,
        providers: Sequence[Provider],
        ledger: FailoverLedger | None = None,
        name: str = "failover",
        pause_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        alerts: Alerts | None = None,
    ) -> None:
        """`alerts`: where a provider's pause is alerted (default: the process's sink)."""
        if not providers:
            raise ValueError("FailoverProvider needs at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique: {names}")
        self.providers = list(providers)
        self.ledger: FailoverLedger = ledger or InMemoryLedger()
        self.name = name
        self.pause_seconds = pause_seconds
        self._clock = clock
        self._paused_until: dict[str, float] = {}
        self.alerts = alerts

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        """Send once; `accepted_by` (the outbox row's provider) overrides the ledger's pin."""
        pinned = accepted_by or await self.ledger.pinned(request.dedup_key)
        failures: list[Exception] = []
        if pinned is not None:
            delivery = await self._settle_pinned(request, pinned, failures)
            if delivery is not None:
                return delivery
        others = [p for p in self.providers if p.name != pinned]
        # Skip paused providers while another may serve; when every one is paused, probe them all.
        for provider in [p for p in others if not self.paused(p.name)] or others:
            try:
                return await self._try(provider, request)
            except (ChannelPaused, ProviderUnavailable) as exc:
                if not _proves_not_accepted(exc):
                    raise
                failures.append(exc)
        if failures and all(isinstance(f, ChannelPaused) for f in failures):
            last = failures[-1]
            assert isinstance(last, ChannelPaused)
            raise ChannelPaused(
                last.error_type, f"{self.name}: every provider refuses us ({last})", self.name
            )
        raise AllProvidersFailed(
            f"{self.name}: every provider failed (last: {failures[-1] if failures else 'none tried'})",
            provider=self.name,
        )

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
        """The delivery if the provider the message is pinned to proves it has it; None otherwise
        (no pin, it has nothing, or it cannot tell)."""
        pinned = accepted_by or await self.ledger.pinned(request.dedup_key)
        provider = next((p for p in self.providers if p.name == pinned), None)
        return await provider.find(request) if provider is not None else None

    def paused(self, provider: str) -> bool:
        return self._paused_until.get(provider, 0.0) > self._clock()

    def _pause(self, provider: Provider, error: ChannelPaused) -> None:
        """Pause one provider of the chain; the attempt that starts the pause raises the alert (one
        per pause in this process, not one per send), with the error's type but not its message."""
        if not self.paused(provider.name):
            log.warning(
                "%s provider %s paused for %.0f s, sending through the others: %s: %s",
                self.name,
                provider.name,
                self.pause_seconds,
                error.error_type,
                error.message,
            )
            (self.alerts or current_alerts()).raise_alert(
                Alert(
                    key=f"provider_paused:{self.name}:{provider.name}:{uuid.uuid4().hex[:12]}",  # this pause
                    kind="provider_paused",
                    provider=f"{self.name}/{provider.name}",
                    error_type=error.error_type,
                    until=datetime.now(UTC) + timedelta(seconds=self.pause_seconds),
                )
            )
        self._paused_until[provider.name] = self._clock() + self.pause_seconds

    async def _try(self, provider: Provider, request: SendRequest) -> Delivery:
        """One provider, one attempt; raises what proves nothing was accepted with the pin released."""
        key = request.dedup_key
        await self.ledger.pin(key, provider.name)
        try:
            return await provider.deliver(request)
        except (PermanentSendError, RateLimited):
            await self.ledger.release(key, provider.name)
            raise
        except ChannelPaused as exc:
            scrub_exception(exc, request.recipient, request.text, request.subject)  # before it is logged
            self._pause(provider, exc)
            await self.ledger.release(key, provider.name)
            raise
        except ProviderUnavailable as exc:
            if exc.maybe_accepted and not (exc.answered and provider.reconciles):
                raise  # no answer, or nobody to ask: the pin stays
            if exc.maybe_accepted:
                existing = await self._find_or(provider, request, exc)
                if existing is not None:
                    return existing
                exc = ProviderUnavailable(f"{exc.message}; it has no such message", provider=provider.name)
            await self.ledger.release(key, provider.name)
            raise exc from None

    async def _settle_pinned(
        self, request: SendRequest, pinned: str, failures: list[Exception]
    ) -> Delivery | None:
        """Resend through the pinned provider (it dedups); None only if it proved it has nothing."""
        provider = next((p for p in self.providers if p.name == pinned), None)
        if provider is None:
            raise ProviderUnavailable(
                f"{self.name}: pinned provider {pinned!r} is not configured", maybe_accepted=True
            )
        try:
            return await self._try(provider, request)
        except (ChannelPaused, ProviderUnavailable) as exc:
            if not _proves_not_accepted(exc):
                raise
            # This attempt failed cleanly, but an earlier one may have got through: ask.
            waiting = ProviderUnavailable(
                f"{self.name}: waiting for {pinned}, which may hold the message ({exc})",
                provider=pinned,
                maybe_accepted=True,
            )
            if not provider.reconciles:
                await self.ledger.pin(request.dedup_key, pinned)
                raise waiting from exc
            existing = await self._find_or(provider, request, waiting)
            if existing is not None:
                await self.ledger.pin(request.dedup_key, pinned)
                return existing
            failures.append(exc)
            return None

    async def _find_or(self, provider: Provider, request: SendRequest, error: Exception) -> Delivery | None:
        """`provider.find`; if the lookup fails too, the pin stays and `error` is raised."""
        try:
            return await provider.find(request)
        except Exception:
            await self.ledger.pin(request.dedup_key, provider.name)
            raise error from None
