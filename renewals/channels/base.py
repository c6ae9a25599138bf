"""The one interface every provider implements, and how a send can fail.

Every channel — SMS, e-mail, VK and Робот Даша's calls — goes through a `Provider`: `deliver` hands
one message (or call) over and says who took it; `find` asks whether the provider already has it (a
retry after a crash, an opted-out recipient whose message may be out). A failover chain is just a
`Provider` made of providers (`renewals.channels.failover`), so the send activity never asks which
kind it holds.

A provider raises `PermanentSendError` for what no retry can fix (a bad number, a stop-listed
recipient, a forbidden text); `ChannelPaused` for "stop sending through us" (no funds, auth);
`TransientSendError` and anything else is retried by the activity.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from renewals.activity_io import PortalQuery, PortalStatus, SendRequest
from renewals.journey_api import RobotOutcome
from renewals.models import Channel


class PermanentSendError(Exception):
    """A send that must not be retried; `error_type` is a name a human understands."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class Delivery(BaseModel):
    """Who took the message, under which id; a robot that answers at once also gives the outcome."""

    model_config = ConfigDict(frozen=True)

    provider: str
    message_id: str
    outcome: RobotOutcome | None = None


class Provider(Protocol):
    """Delivers messages of one channel; must honour `request.dedup_key` so a retry sends nothing.

    `accepted_by` is the provider the outbox says may already hold the message (a failover chain
    sends it there only); a single provider ignores it. `reconciles`: `find` can prove the provider
    has, or has not, the message (SMSC's status query); without it `find` answers None (cannot tell).
    """

    name: str
    reconciles: bool

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery: ...

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None: ...


class SingleProvider:
    """A provider of one service: implement `send` (and `lookup` if it can reconcile)."""

    name: str
    reconciles: bool = False

    async def send(self, request: SendRequest) -> str:
        """Hand the message over; returns the provider's message id."""
        raise NotImplementedError

    async def lookup(self, request: SendRequest) -> str | None:
        """The message id if the provider already has the message (only when `reconciles`)."""
        return None

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        return Delivery(provider=self.name, message_id=await self.send(request))

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
        if not self.reconciles:
            return None
        message_id = await self.lookup(request)
        return Delivery(provider=self.name, message_id=message_id) if message_id else None


class AgentPortal(Protocol):
    async def renewal_status(self, query: PortalQuery) -> PortalStatus: ...


class Channels:
    """The providers a worker sends through, one per channel, and the agent portal it asks."""

    def __init__(self, providers: dict[Channel, Provider], portal: AgentPortal) -> None:
        self.providers = providers
        self.portal = portal

    def provider(self, channel: Channel) -> Provider:
        try:
            return self.providers[channel]
        except KeyError:
            raise PermanentSendError("ChannelNotConfigured", f"no provider for {channel}") from None
