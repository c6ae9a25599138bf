"""Recording channels: providers that 'deliver' by recording each message in the database.

`renewals simulate`, the tests and a worker with `channels=database` use them: nothing leaves the
machine. They refuse what a real provider would (an invalid phone, a malformed e-mail address) and
deduplicate on the same key a real provider gets, so journeys behave as they will in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from renewals.activity_io import PortalQuery, PortalStatus, SendRequest
from renewals.channels.base import Delivery, PermanentSendError, SingleProvider
from renewals.channels.portal_http import AgentCard
from renewals.db.database import Database
from renewals.db.tables import AgentRow, PortalRenewalRow, SandboxMessageRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.journey_api import RobotOutcome
from renewals.models import Channel
from renewals.phones import is_valid_phone
from renewals.privacy import mask_phone


class MessageRecord:
    """The recording providers' 'provider side': one row per accepted dedup key."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def accept(self, request: SendRequest) -> int:
        key = request.dedup_key
        values = {
            "dedup_key": key,
            "channel": request.channel.value,
            "recipient": request.recipient,
            "subject": request.subject,
            "text": request.text,
            "accepted_at": datetime.now(UTC),
        }
        # One Core statement for a first send (no ORM session: every simulated send comes here);
        # a retry's insert returns nothing, and the row the first attempt recorded is read instead.
        insert = insert_ignoring_conflict(self.db.dialect, SandboxMessageRow, values, ["dedup_key"])
        async with self.db.engine.begin() as connection:
            new = (await connection.execute(insert.returning(SandboxMessageRow.id))).scalar()
            if new is not None:
                return int(new)
            kept = select(SandboxMessageRow.id).where(SandboxMessageRow.dedup_key == key)
            return int((await connection.execute(kept)).scalar_one())


def _refuse_invalid_address(request: SendRequest) -> None:
    if request.channel in (Channel.SMS, Channel.ROBOT_CALL) and not is_valid_phone(request.recipient):
        raise PermanentSendError("InvalidPhone", f"not a valid phone number: {mask_phone(request.recipient)}")
    if request.channel is Channel.EMAIL and "@" not in request.recipient:
        raise PermanentSendError("InvalidEmail", "not an e-mail address")


class RecordingMessages(SingleProvider):
    """SMS, e-mail and VK in one: validates the address as the real provider would, then records."""

    name = "recording"

    def __init__(self, db: Database) -> None:
        self.record = MessageRecord(db)

    async def send(self, request: SendRequest) -> str:
        _refuse_invalid_address(request)
        return f"recorded-{await self.record.accept(request)}"


class ScriptedRobot(SingleProvider):
    """Робот Даша, recorded: answers each call at once from a script, by default «no answer».

    `script` maps a journey id to the outcomes of its successive calls, which is how
    `renewals simulate` plays a scenario's `robot` list.
    """

    name = "recording-robot"

    def __init__(
        self,
        db: Database,
        script: Mapping[str, Sequence[RobotOutcome]] | None = None,
        default: RobotOutcome = RobotOutcome.NO_ANSWER,
    ) -> None:
        self.record = MessageRecord(db)
        self.script = script or {}
        self.default = default

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        _refuse_invalid_address(request)
        call_id = await self.record.accept(request)
        outcomes = self.script.get(request.journey_id, ())
        outcome = outcomes[request.attempt - 1] if request.attempt <= len(outcomes) else self.default
        return Delivery(provider=self.name, message_id=f"recorded-call-{call_id}", outcome=outcome)


class DatabasePortal:
    """The agent portal as the database sees it (table `portal_renewals`), until the HTTP client.
    An agent's card is the imported one (table `agents`): what the journey already has, so a journey
    on recording channels (`renewals simulate`) quotes the imported phone as before."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def renewal_status(self, query: PortalQuery) -> PortalStatus:
        async with self.db.session() as session:
            row = await session.get(PortalRenewalRow, (query.policy_number, query.expires_on))
        if row is None:
            return PortalStatus()
        return PortalStatus(draft=row.draft, quote=row.quote, paid=row.paid)

    async def agent(self, agent_id: str) -> AgentCard | None:
        async with self.db.session() as session:
            row = await session.get(AgentRow, agent_id)
        return None if row is None else AgentCard(id=row.id, name=row.name, phone=row.phone)
