"""Provider calls, timed: each channel's provider wrapped so every `deliver` and `find` is one
observation of `renewals_provider_request_duration_seconds`, and every "stop sending through us"
(`ChannelPaused`: no funds, bad credentials) one count of `renewals_channel_pauses_total`.

Wrapping the providers (not the send activity) measures the provider alone: the outbox's claim and
mark, the opt-out check and the send window are not in it. A failover chain is timed as one call
(what the send waited for); its label is the provider that took the message, or the chain's name
when none did.
"""

from __future__ import annotations

import time
from datetime import timedelta

from renewals.activity_io import SendRequest
from renewals.channels.base import Channels, Delivery, Provider
from renewals.channels.errors import ChannelPaused
from renewals.models import Channel
from renewals.observability.labels import error_class
from renewals.observability.metrics import AppMetrics


class TimedProvider:
    """A `Provider` that reports each call's duration and outcome, and otherwise is `inner`."""

    def __init__(self, inner: Provider, channel: str, metrics: AppMetrics) -> None:
        self.inner = inner
        self.channel = channel
        self.metrics = metrics
        self.name = inner.name
        self.reconciles = inner.reconciles

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        started = time.perf_counter()
        try:
            delivery = await self.inner.deliver(request, accepted_by=accepted_by)
        except BaseException as error:
            self._failed("deliver", started, error)
            raise
        self._took("deliver", delivery.provider, "ok", started)
        return delivery

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
        started = time.perf_counter()
        try:
            delivery = await self.inner.find(request, accepted_by=accepted_by)
        except BaseException as error:
            self._failed("find", started, error)
            raise
        self._took("find", delivery.provider if delivery else self.name, "ok", started)
        return delivery

    def _failed(self, operation: str, started: float, error: BaseException) -> None:
        provider = getattr(error, "provider", "") or self.name
        self._took(operation, provider, "error", started)
        if isinstance(error, ChannelPaused):
            self.metrics.channel_pauses.add(
                1,
                {"channel": self.channel, "provider": provider, "error_class": error_class(error.error_type)},
            )

    def _took(self, operation: str, provider: str, outcome: str, started: float) -> None:
        took = timedelta(seconds=time.perf_counter() - started)
        self.metrics.observe_provider(self.channel, provider, operation, outcome, took)


def timed_channels(channels: Channels, metrics: AppMetrics) -> Channels:
    """`channels` with every provider timed (the agent portal as it is: it is not a send)."""
    providers: dict[Channel, Provider] = {
        channel: TimedProvider(provider, channel.value, metrics)
        for channel, provider in channels.providers.items()
    }
    return Channels(providers, channels.portal)
