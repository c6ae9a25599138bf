"""Send through the first provider that works, without ever sending one message twice.

The rule that keeps it safe: **a message is pinned to the provider that may have it.**

* Before asking provider P, the key is pinned to P (`FailoverLedger.pin`). If P then fails in a
  way that proves it did not take the message — it refused us (`ChannelPaused`), the connection
  never opened, a 5xx, its own "unavailable" — the pin is released and the next provider is tried.
  A permanent recipient error (`PermanentSendError`) is raised as is: another provider would reject
  the same number; a rate limit is raised too: back off, don't spread the load.
* An ambiguous failure (read timeout, dropped connection, an unknown exception) leaves the pin
  on P and is raised; the activity's retry comes back to P only, and P deduplicates on the key.
* A retry that finds a pin (from an earlier attempt, maybe one cut short by a crash) goes to the
  pinned provider only. If that provider is down for good, we may move on only when it can prove
  it does not have the message (`lookup`, e.g. SMSC's status query, answers None); otherwise we
  wait for it.

The pin lives in a `FailoverLedger`. `InMemoryLedger` serves one worker process; in production the
outbox row is the ledger (its `provider` column): implement the three methods over it, or pass
`accepted_by=` (the row's provider) to `deliver` and record `Delivery.provider` after the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from renewals.channels.base import MessageProvider, PermanentSendError
from renewals.channels.errors import (
    ChannelPaused,
    ProviderUnavailable,
    RateLimited,
)
from renewals.contracts import SendRequest


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    message_id: str


class FailoverLedger(Protocol):
    """Which provider may hold the message with a given dedup key."""

    async def pinned(self, key: str) -> str | None: ...

    async def pin(self, key: str, provider: str) -> None: ...

    async def release(self, key: str, provider: str) -> None:
        """Forget the pin if it still names `provider` (it proved it has nothing)."""
        ...


@runtime_checkable
class Reconcilable(Protocol):
    """A provider that can tell whether it already has a message (SMSC: `/sys/status.php`)."""

    async def lookup(self, request: SendRequest) -> str | None: ...


class InMemoryLedger:
    """A per-process ledger; enough for tests and a single worker (the outbox is the durable one)."""

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


def _definitely_not_accepted(exc: Exception) -> bool:
    """A provider-level failure that proves the provider did not take the message."""
    if isinstance(exc, ChannelPaused):
        return True
    return isinstance(exc, ProviderUnavailable) and not exc.maybe_accepted


class FailoverProvider:
    """A `MessageProvider` over several providers of one channel, tried in order."""

    def __init__(
        self,
        providers: Sequence[MessageProvider],
        ledger: FailoverLedger | None = None,
        name: str = "failover",
    ) -> None:
        if not providers:
            raise ValueError("FailoverProvider needs at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique: {names}")
        self.providers = list(providers)
        self.ledger: FailoverLedger = ledger or InMemoryLedger()
        self.name = name

    async def send(self, request: SendRequest) -> str:
        return (await self.deliver(request)).message_id

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        """Send once; `accepted_by` (e.g. the outbox row's provider) overrides the ledger's pin."""
        key = request.dedup_key
        pinned = accepted_by or await self.ledger.pinned(key)
        if pinned is not None:
            delivery = await self._settle_pinned(request, pinned)
            if delivery is not None:
                return delivery
        last: Exception | None = None
        for provider in self.providers:
            if provider.name == pinned:
                continue  # proved empty just now, and down
            try:
                return await self._try(provider, request)
            except (ChannelPaused, ProviderUnavailable) as exc:
                if not _definitely_not_accepted(exc):
                    raise
                last = exc
        raise AllProvidersFailed(f"{self.name}: every provider failed (last: {last})", provider=self.name)

    async def _try(self, provider: MessageProvider, request: SendRequest) -> Delivery:
        key = request.dedup_key
        await self.ledger.pin(key, provider.name)
        try:
            message_id = await provider.send(request)
        except (PermanentSendError, RateLimited):
            await self.ledger.release(key, provider.name)
            raise
        except (ChannelPaused, ProviderUnavailable) as exc:
            if _definitely_not_accepted(exc):
                await self.ledger.release(key, provider.name)
            raise
        return Delivery(provider=provider.name, message_id=message_id)

    async def _settle_pinned(self, request: SendRequest, pinned: str) -> Delivery | None:
        """Resend through the pinned provider (it dedups); None only if it proved it has nothing."""
        provider = next((p for p in self.providers if p.name == pinned), None)
        if provider is None:
            raise ProviderUnavailable(f"{self.name}: pinned provider {pinned!r} is not configured")
        try:
            return await self._try(provider, request)
        except (ChannelPaused, ProviderUnavailable) as exc:
            if not _definitely_not_accepted(exc) or not isinstance(provider, Reconcilable):
                # The pinned provider may hold the message from an earlier attempt: wait for it.
                await self.ledger.pin(request.dedup_key, provider.name)
                raise
        try:
            existing = await provider.lookup(request)
        except Exception:
            await self.ledger.pin(request.dedup_key, provider.name)
            raise
        if existing is not None:
            await self.ledger.pin(request.dedup_key, provider.name)
            return Delivery(provider=provider.name, message_id=existing)
        return None
