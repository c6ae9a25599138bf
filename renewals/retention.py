"""Retention and erasure of clients' personal data in the application database (152-FZ).

`purge` anonymises what is kept about journeys finished more than some days ago; `forget` erases one
client's data on request and returns the act for the record. Both keep the audit facts: what was sent
when, on which channel, to a masked address, with which result.

Where the database holds personal data (a name, phone, e-mail, VK id, or a message text, which carries
the client's name), and what erasure does with it:

- clients: last_name, first_name, patronymic, phone, email, vk_id: the row is deleted;
- policies: client_id ties a policy term to the person: the term's row is deleted;
- outbox: recipient is masked (`renewals.privacy.mask_address`), text removed, and reason (a provider's
  error may quote the address) redacted; channel, touchpoint, template, status, provider, the
  provider's message id and the times stay: the audit of every send;
- sandbox_messages (what the recording channels "delivered"): recipient masked, subject and text removed;
- operator_tasks: text (the message an operator reads out) removed; reason, status, outcome, times stay;
- operator_claims: note (an operator's free text about the call) removed; who and when stay;
- journey_sync: policy_hash (an unkeyed hash of the policy with its client, only needed while the
  journey runs): the row is deleted;
- opt_outs holds keyed hashes only (migration 0005) and stays: it is what keeps suppressing.
Nothing personal, kept as it is: journeys (stage, dates, agent), webhook_events (which callback did
what to which journey: a callback's payload is never stored), portal_renewals, channel_pauses, the SLA
tables (partners' applications). agents and regional_centres are the company's contacts, not clients'.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database
from renewals.db.tables import ClientRow, JourneyRow, OperatorTaskRow, OutboxRow, PolicyRow, SandboxMessageRow
from renewals.db.tables_ops import JourneySyncRow, OperatorClaimRow
from renewals.delivery import OptOuts
from renewals.journey_api import EventType, JourneyEvent
from renewals.models import journey_id
from renewals.phones import InvalidPhone, to_e164
from renewals.privacy import mask_address, mask_email, mask_phone, mask_vk, redact
from renewals.temporal.journeys import execution_status, send_event

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")
ERASED = ""  # what a required text column holds once erased
CHUNK = 500  # ids per IN (…): well under every database's limit of bound parameters
# A journey ends when its client's last day of cover ends: two days after it, in any time zone, it is over.
SETTLED = timedelta(days=2)
_TERM = re.compile(r"-(\d{8})$")
# Each table erasure touches, in the order the reports list them, and what it does there.
TABLES: dict[str, str] = {
    "clients": "deleted (surname, name, patronymic, phone, e-mail, VK id)",
    "policies": "deleted (the policy terms tying the client to them)",
    "outbox": "anonymised (texts removed, recipients masked)",
    "sandbox_messages": "anonymised (texts and subjects removed, recipients masked)",
    "operator_tasks": "anonymised (texts removed)",
    "operator_claims": "anonymised (operators' notes removed)",
    "journey_sync": "deleted (hashes of the policy with its client)",
}
KEPT = (
    "kept: outbox statuses, reasons and times (recipients masked), journeys (stage, dates), "
    "webhook_events (no personal data), opt_outs (keyed hashes only)"
)


@dataclass(frozen=True)
class Scope:
    """What one erasure covers: the journeys' rows, the person's addresses anywhere, their policy terms."""

    journey_ids: set[str]
    policy_ids: set[int]
    addresses: set[str] = field(default_factory=set)  # clear: matched, never printed
    client_ids: set[int] | None = None  # None: every client left without a policy term


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime
    journeys: int  # journeys finished before the cutoff
    counts: dict[str, int]

    def lines(self) -> list[str]:
        return [
            f"purge: journeys finished before {self.cutoff:%Y-%m-%d %H:%M} UTC: {self.journeys}",
            *_count_lines(self.counts),
            KEPT,
        ]


@dataclass(frozen=True)
class Subject:
    """Whom an erasure request names: a phone or a policy number."""

    phone: str | None = None
    policy: str | None = None

    def masked(self) -> str:
        return f"phone {mask_phone(_canonical(self.phone))}" if self.phone else f"policy {self.policy}"


@dataclass(frozen=True)
class ClientRecords:
    """What the database holds about the person a request names."""

    subject: Subject
    client_ids: set[int]
    policy_ids: set[int]
    journey_ids: set[str]
    addresses: set[str]  # clear: matched, never printed

    @property
    def found(self) -> bool:
        return bool(self.client_ids or self.journey_ids)


@dataclass(frozen=True)
class ErasureAct:
    """The record of one erasure: no personal data in clear (addresses masked, no names)."""

    request: str
    subject: str
    at: datetime
    addresses: list[str]  # masked
    journeys: list[str]
    ended: list[str]
    counts: dict[str, int]
    listed: int  # addresses put on the do-not-contact list (as keyed hashes)

    def lines(self) -> list[str]:
        journeys = ", ".join(f"{j} (ended now as opted out)" if j in self.ended else j for j in self.journeys)
        return [
            "ACT of erasure of personal data (152-FZ)",
            f"request: {self.request}",
            f"subject: {self.subject}; addresses: {', '.join(self.addresses) or 'none found'}",
            f"erased at: {self.at.isoformat(timespec='seconds')}",
            f"journeys: {journeys or 'none'}",
            *_count_lines(self.counts),
            f"do-not-contact: {self.listed} addresses listed, as keyed hashes (no further contact)",
            KEPT,
        ]


class JourneyStillRunning(Exception):
    def __init__(self, journey_ids: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.journey_ids = list(journey_ids)


# ---- purge ----------------------------------------------------------------------------------------


async def purge(db: Database, older_than: timedelta, now: datetime | None = None) -> PurgeReport:
    """Anonymise what is kept about the journeys finished before `now - older_than` (idempotent: a
    second run changes nothing). A journey is finished when its outcome is in `journeys` (written as
    it closes) or its term's last day of cover is over; a client goes once none of their terms is left."""
    cutoff = (now or datetime.now(UTC)) - older_than
    async with db.session() as session, session.begin():
        journeys, policies = await _finished_before(session, cutoff)
        counts = await _erase(session, Scope(journeys, policies))
    return PurgeReport(cutoff, len(journeys), counts)


async def _finished_before(session: AsyncSession, cutoff: datetime) -> tuple[set[str], set[int]]:
    """The journeys finished before `cutoff`, and the policy terms whose journeys they are or whose
    cover ended before it (even a journey that was terminated, without writing its outcome, is over)."""
    last_day = (cutoff - SETTLED).date()
    query = select(JourneyRow.id, JourneyRow.policy_number, JourneyRow.expires_on)
    closed = (await session.execute(query.where(JourneyRow.updated_at < cutoff))).all()
    journeys = {row.id for row in closed}
    for column in (OutboxRow.journey_id, OperatorTaskRow.journey_id, JourneySyncRow.journey_id):
        for known in (await session.scalars(select(column).distinct())).all():
            ends = term_end(known)
            if ends is not None and ends <= last_day:
                journeys.add(known)
    ended = select(PolicyRow.id).where(PolicyRow.expires_on <= last_day)
    policies = set((await session.scalars(ended)).all())
    terms = {(row.policy_number, row.expires_on) for row in closed}
    for numbers in _chunks(sorted({number for number, _ in terms})):
        of_closed = select(PolicyRow.id, PolicyRow.number, PolicyRow.expires_on).where(
            PolicyRow.number.in_(numbers)
        )
        rows = (await session.execute(of_closed)).all()
        policies |= {row.id for row in rows if (row.number, row.expires_on) in terms}
    return journeys, policies


def term_end(journey: str) -> date | None:
    """The last day of cover a journey id ends with (`renewals.models.journey_id`), or None."""
    match = _TERM.search(journey)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None


# ---- forget ---------------------------------------------------------------------------------------


async def find_client(db: Database, subject: Subject) -> ClientRecords:
    """The client rows a request names (by phone: every row with that number; by policy: the clients
    of its terms), all their policy terms, journeys and addresses."""
    phone = _canonical(subject.phone) if subject.phone else None
    async with db.session() as session:
        if phone is not None:
            named = select(ClientRow.id).where(ClientRow.phone == phone)
        else:
            named = select(PolicyRow.client_id).where(PolicyRow.number == (subject.policy or "").strip())
        client_ids = sorted(set((await session.scalars(named)).all()))
        clients = (await session.scalars(select(ClientRow).where(ClientRow.id.in_(client_ids)))).all()
        of_clients = select(PolicyRow.id, PolicyRow.number, PolicyRow.expires_on)
        terms = (await session.execute(of_clients.where(PolicyRow.client_id.in_(client_ids)))).all()
        numbers = {row.number for row in terms} | ({subject.policy.strip()} if subject.policy else set())
        journeys = {journey_id(row.number, row.expires_on) for row in terms}
        for chunk in _chunks(sorted(numbers)):
            known = select(JourneyRow.id).where(JourneyRow.policy_number.in_(chunk))
            journeys |= set((await session.scalars(known)).all())
    addresses = {a for c in clients for a in (c.phone, c.email, c.vk_id) if a} | ({phone} if phone else set())
    return ClientRecords(subject, set(client_ids), {row.id for row in terms}, journeys, addresses)


async def running_journeys(client: Client, journeys: Iterable[str]) -> list[str]:
    """The journeys Temporal still runs, of these."""
    statuses = [(j, await execution_status(client, j)) for j in sorted(journeys)]
    return [j for j, status in statuses if status is WorkflowExecutionStatus.RUNNING]


async def end_as_opted_out(
    client: Client, journeys: Sequence[str], timeout: timedelta = timedelta(seconds=60)
) -> None:
    """Tell each journey its client opted out (the journey adds them to the do-not-contact list and
    closes as `opted_out`), and wait until every one has closed; `JourneyStillRunning` after `timeout`."""
    for journey in journeys:
        try:
            await send_event(client, journey, JourneyEvent(type=EventType.OPT_OUT, source="forget"))
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:  # it closed meanwhile: nothing to end
                raise
    deadline = asyncio.get_running_loop().time() + timeout.total_seconds()
    while still := await running_journeys(client, journeys):
        if asyncio.get_running_loop().time() > deadline:
            raise JourneyStillRunning(still, f"journey {', '.join(still)} did not close within {timeout}")
        await asyncio.sleep(0.2)


async def forget(
    db: Database,
    records: ClientRecords,
    request: str,
    ended: Sequence[str] = (),
    hash_key: bytes | None = None,
    now: datetime | None = None,
) -> ErasureAct:
    """Erase what `records` found (its journeys must have closed: see `running_journeys`), list the
    person's addresses as keyed hashes on the do-not-contact list, and return the act."""
    scope = Scope(records.journey_ids, records.policy_ids, records.addresses, records.client_ids)
    async with db.session() as session, session.begin():
        counts = await _erase(session, scope)
    addresses = sorted(records.addresses)
    opt_outs = OptOuts(db, hash_key=hash_key)
    await opt_outs.add(addresses, f"erasure request {request}", None, source="erasure")  # kept for good
    return ErasureAct(
        request=request,
        subject=records.subject.masked(),
        at=now or datetime.now(UTC),
        addresses=sorted({_mask_any(a) for a in addresses}),
        journeys=sorted(records.journey_ids),
        ended=list(ended),
        counts=counts,
        listed=len({opt_outs.key(a, None) for a in addresses}),
    )


def _canonical(phone: str) -> str:
    """A phone as intake stores it (E.164), whatever spelling the request gives; as given if unparsable."""
    try:
        return to_e164(phone)
    except InvalidPhone:
        return phone.strip()


def _mask_any(address: str) -> str:
    if "@" in address:
        return mask_email(address)
    if sum(ch.isdigit() for ch in address) >= 10 and not address.isdigit():
        return mask_phone(address)
    return mask_vk(address)


# ---- the erasure itself ---------------------------------------------------------------------------


async def _erase(session: AsyncSession, scope: Scope) -> dict[str, int]:
    counts = dict.fromkeys(TABLES, 0)
    counts["outbox"] = await _anonymise_outbox(session, scope)
    counts["sandbox_messages"] = await _anonymise_sandbox(session, scope)
    counts["operator_tasks"], counts["operator_claims"] = await _anonymise_tasks(session, scope.journey_ids)
    for ids in _chunks(sorted(scope.journey_ids)):
        counts["journey_sync"] += _rows(
            await session.execute(delete(JourneySyncRow).where(JourneySyncRow.journey_id.in_(ids)))
        )
    for policy_ids in _chunks(sorted(scope.policy_ids)):
        counts["policies"] += _rows(
            await session.execute(delete(PolicyRow).where(PolicyRow.id.in_(policy_ids)))
        )
    unreferenced = ~select(PolicyRow.id).where(PolicyRow.client_id == ClientRow.id).exists()
    if scope.client_ids is None:
        counts["clients"] = _rows(await session.execute(delete(ClientRow).where(unreferenced)))
    for client_ids in _chunks(sorted(scope.client_ids or ())):
        query = delete(ClientRow).where(ClientRow.id.in_(client_ids), unreferenced)
        counts["clients"] += _rows(await session.execute(query))
    return counts


async def _anonymise_outbox(session: AsyncSession, scope: Scope) -> int:
    untouched = or_(OutboxRow.text.is_not(None), OutboxRow.recipient.not_like("%***%"))
    columns = (OutboxRow.id, OutboxRow.channel, OutboxRow.recipient, OutboxRow.reason)
    rows: dict[int, Any] = {}
    for ids in _chunks(sorted(scope.journey_ids)):
        query = select(*columns).where(OutboxRow.journey_id.in_(ids), untouched)
        rows.update({row.id: row for row in (await session.execute(query)).all()})
    for addresses in _chunks(sorted(scope.addresses)):
        query = select(*columns).where(OutboxRow.recipient.in_(addresses), untouched)
        rows.update({row.id: row for row in (await session.execute(query)).all()})
    changes = [
        {
            "id": row.id,
            "recipient": _masked(row.channel, row.recipient),
            "text": None,
            # A provider's error may quote the address: masked there too (a masked one is no pattern).
            "reason": redact(row.reason, *_clear(row.recipient), *scope.addresses)
            if row.reason
            else row.reason,
        }
        for row in rows.values()
    ]
    if changes:
        await session.execute(update(OutboxRow), changes)
    return len(changes)


async def _anonymise_sandbox(session: AsyncSession, scope: Scope) -> int:
    """The recording channels' log has no journey column: its dedup key starts with the journey id."""
    columns = (
        SandboxMessageRow.id,
        SandboxMessageRow.dedup_key,
        SandboxMessageRow.channel,
        SandboxMessageRow.recipient,
    )
    query = select(*columns).where(SandboxMessageRow.text != ERASED)
    addresses = {a.strip().lower() for a in scope.addresses}
    changes = [
        {"id": row.id, "recipient": _masked(row.channel, row.recipient), "subject": None, "text": ERASED}
        for row in (await session.execute(query)).all()
        if row.dedup_key.rsplit(":", 2)[0] in scope.journey_ids or row.recipient.strip().lower() in addresses
    ]
    if changes:
        await session.execute(update(SandboxMessageRow), changes)
    return len(changes)


async def _anonymise_tasks(session: AsyncSession, journeys: set[str]) -> tuple[int, int]:
    tasks = claims = 0
    for ids in _chunks(sorted(journeys)):
        task_ids = list(
            (
                await session.scalars(select(OperatorTaskRow.id).where(OperatorTaskRow.journey_id.in_(ids)))
            ).all()
        )
        texts = update(OperatorTaskRow).where(
            OperatorTaskRow.id.in_(task_ids), OperatorTaskRow.text != ERASED
        )
        tasks += _rows(await session.execute(texts.values(text=ERASED)))
        notes = update(OperatorClaimRow).where(
            OperatorClaimRow.task_id.in_(task_ids), OperatorClaimRow.note.is_not(None)
        )
        claims += _rows(await session.execute(notes.values(note=None)))
    return tasks, claims


def _masked(channel: str, recipient: str | None) -> str | None:
    """The audit's recipient: masked once (a masked one is left as it is)."""
    return mask_address(channel, recipient) if _clear(recipient) else recipient


def _clear(address: str | None) -> list[str]:
    """`[address]` if it is an address in clear, else `[]` (None, or masked already)."""
    return [address] if address and "***" not in address else []


def _rows(result: object) -> int:
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _count_lines(counts: dict[str, int]) -> list[str]:
    width = max(len(table) for table in TABLES)
    return [f"  {table:<{width}}  {counts.get(table, 0):>6} {what}" for table, what in TABLES.items()]
