"""The development sandbox: channels that 'deliver' by recording each message in the database.

It validates what a real provider would reject (an invalid phone, a malformed e-mail address) and
deduplicates on the same key a real provider gets, so journeys behave as they will in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import phonenumbers
from sqlalchemy import select

from renewals.activity_io import (
    PortalQuery,
    PortalStatus,
    RobotCallRequest,
    RobotCallResult,
    SendRequest,
)
from renewals.channels.base import PermanentSendError
from renewals.db.database import Database
from renewals.db.tables import PortalRenewalRow, SandboxMessageRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.journey_api import RobotOutcome
from renewals.models import Channel


def is_valid_phone(raw: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(raw, "RU")))
    except phonenumbers.NumberParseException:
        return False


class SandboxLog:
    """The sandbox's 'provider side': one row per accepted dedup key."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def accept(
        self, key: str, channel: Channel, recipient: str, text: str, subject: str | None = None
    ) -> int:
        values = {
            "dedup_key": key,
            "channel": channel.value,
            "recipient": recipient,
            "subject": subject,
            "text": text,
            "accepted_at": datetime.now(UTC),
        }
        async with self.db.session() as session, session.begin():
            await session.execute(
                insert_ignoring_conflict(self.db.dialect, SandboxMessageRow, values, ["dedup_key"])
            )
            return (
                await session.execute(select(SandboxMessageRow.id).where(SandboxMessageRow.dedup_key == key))
            ).scalar_one()


class SandboxMessages:
    """SMS, e-mail and VK in one: validates the address as the real provider would, then records."""

    name = "sandbox"

    def __init__(self, db: Database) -> None:
        self.log = SandboxLog(db)

    async def send(self, request: SendRequest) -> str:
        if request.channel is Channel.SMS and not is_valid_phone(request.recipient):
            raise PermanentSendError("InvalidPhone", f"not a valid phone number: {request.recipient!r}")
        if request.channel is Channel.EMAIL and "@" not in request.recipient:
            raise PermanentSendError("InvalidEmail", "not an e-mail address")
        message_id = await self.log.accept(
            request.dedup_key, request.channel, request.recipient, request.text, request.subject
        )
        return f"sandbox-{message_id}"


class SandboxRobot:
    """Робот Даша in the sandbox: answers each call from a script, by default «no answer».

    `script` maps a journey id to the outcomes of its successive calls, which is how
    `renewals simulate` plays a scenario's `robot` list.
    """

    name = "sandbox-robot"

    def __init__(
        self,
        db: Database,
        script: Mapping[str, Sequence[RobotOutcome]] | None = None,
        default: RobotOutcome = RobotOutcome.NO_ANSWER,
    ) -> None:
        self.log = SandboxLog(db)
        self.script = script or {}
        self.default = default

    async def place_call(self, request: RobotCallRequest) -> RobotCallResult:
        if not is_valid_phone(request.phone):
            raise PermanentSendError("InvalidPhone", f"not a valid phone number: {request.phone!r}")
        call_id = await self.log.accept(request.dedup_key, Channel.ROBOT_CALL, request.phone, request.script)
        outcomes = self.script.get(request.journey_id, ())
        outcome = outcomes[request.attempt - 1] if request.attempt <= len(outcomes) else self.default
        return RobotCallResult(task_id=f"sandbox-call-{call_id}", outcome=outcome)


class DatabasePortal:
    """The agent portal as the database sees it (table `portal_renewals`), until the HTTP client."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def renewal_status(self, query: PortalQuery) -> PortalStatus:
        async with self.db.session() as session:
            row = await session.get(PortalRenewalRow, (query.policy_number, query.expires_on))
        if row is None:
            return PortalStatus()
        return PortalStatus(draft=row.draft, quote=row.quote, paid=row.paid)
