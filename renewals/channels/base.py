"""The channel interface every provider adapter implements, and how a send can fail.

A provider raises `PermanentSendError` for what no retry can fix (a bad number, a stop-listed
recipient, a forbidden text); anything else it raises is transient and the activity retries it.
"""

from __future__ import annotations

from typing import Protocol

from renewals.activity_io import (
    PortalQuery,
    PortalStatus,
    RobotCallRequest,
    RobotCallResult,
    SendRequest,
)
from renewals.models import Channel


class PermanentSendError(Exception):
    """A send that must not be retried; `error_type` is a name a human understands."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class MessageProvider(Protocol):
    """Sends SMS, e-mail or VK messages; must honour `request.dedup_key` so a retry sends nothing."""

    name: str

    async def send(self, request: SendRequest) -> str:
        """Deliver the message to the provider; returns the provider's message id."""
        ...


class RobotProvider(Protocol):
    name: str

    async def place_call(self, request: RobotCallRequest) -> RobotCallResult: ...


class AgentPortal(Protocol):
    async def renewal_status(self, query: PortalQuery) -> PortalStatus: ...


class Channels:
    """The providers a worker sends through, one per channel."""

    def __init__(
        self,
        messages: dict[Channel, MessageProvider],
        robot: RobotProvider,
        portal: AgentPortal,
    ) -> None:
        self.messages = messages
        self.robot = robot
        self.portal = portal

    def for_channel(self, channel: Channel) -> MessageProvider:
        try:
            return self.messages[channel]
        except KeyError:
            raise PermanentSendError("ChannelNotConfigured", f"no provider for {channel}") from None
