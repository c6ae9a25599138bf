"""The do-not-contact list managed by hand: the service behind `renewals optout …` and
`/operators/optouts…`, so the CLI and the HTTP API accept and refuse the same things.

An address is given as a phone (`+79161234567`, `8 916 123-45-67`), an e-mail, or a VK user id written
`vk:123456789` (also `id123456789`, `https://vk.com/id123456789`); a bare run of digits is refused as
ambiguous (a phone without `+`, or a VK id?). It is stored as journeys hold it — E.164, the e-mail
lower-cased, the VK id's digits — hashed with the list's key (`renewals.delivery`), so a listed
address suppresses every journey's sends to it. Nothing here ever shows an address in clear: errors
and listings mask it.

Every change names who (`by`), why (`reason`) and where from (`source`); the time is the database's
record. An entry made by an erasure request (`renewals forget`) is not removed by hand: the person
asked to be forgotten, and the entry is all that keeps them from being contacted again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from renewals.db.database import Database, as_utc
from renewals.db.tables import ClientRow, OptOutChangeRow, OptOutRow, OutboxRow, PolicyRow
from renewals.delivery import Listing, OptOuts, masked_address
from renewals.models import journey_id as journey_id_of
from renewals.phones import InvalidPhone, to_e164
from renewals.privacy import mask_text

MAX_BY = 100  # opt_outs.added_by / opt_out_changes.actor are String(100)
MAX_REASON = 500
MAX_IMPORT_LINES = 100_000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VK = re.compile(r"^(?:vk:|(?:https?://)?(?:m\.)?vk\.com/id|id)\s*(\d{1,12})$", re.IGNORECASE)
_DIGITS = re.compile(r"^\d+$")
_TERM = re.compile(r"-(\d{8})$")
ERASURE = "erasure"


class RegisterRefused(Exception):
    """The register will not do this; `reason` says why, `status` is the HTTP status to answer."""

    status = 422

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotListed(RegisterRefused):
    status = 404


class KeptListed(RegisterRefused):
    status = 409


@dataclass(frozen=True)
class Address:
    kind: str  # phone, email, vk
    value: str  # as journeys hold it

    @property
    def masked(self) -> str:
        return masked_address(self.value, self.kind)


def parse_address(raw: str) -> Address:
    """An address as an operator writes it, or `RegisterRefused` saying (masked) what is wrong."""
    text = (raw or "").strip()
    shown = mask_text(text)
    if not text:
        raise RegisterRefused("an address is required (a phone, an e-mail or vk:<VK user id>)")
    lowered = text.lower()
    for prefix in ("phone:", "email:"):
        if lowered.startswith(prefix):
            text = text[len(prefix) :].strip()
            return _phone(text) if prefix == "phone:" else _email(text)
    vk = _VK.match(text)
    if vk:
        return Address("vk", vk.group(1))
    if "@" in text:
        return _email(text)
    if _DIGITS.match(text):
        raise RegisterRefused(f"{shown!r} is ambiguous: write a phone with its + (+7…) or a VK id as vk:…")
    return _phone(text)


def _phone(text: str) -> Address:
    try:
        return Address("phone", to_e164(text))
    except InvalidPhone as error:
        raise RegisterRefused(f"{error}; an e-mail needs @, a VK id is written vk:123456789") from None


def _email(text: str) -> Address:
    if not _EMAIL.match(text):
        raise RegisterRefused(f"{masked_address(text, 'email')!r} is not an e-mail address")
    return Address("email", text.lower())


def who(raw: str | None) -> str:
    """Who changes the list: required, so that every entry can be traced to a person."""
    name = (raw or "").strip()
    if not name:
        raise RegisterRefused("who makes the change is required (--by / operator)")
    if len(name) > MAX_BY or not name.isprintable():
        raise RegisterRefused(f"who makes the change is at most {MAX_BY} printable characters")
    return name


def why(raw: str | None) -> str:
    reason = (raw or "").strip()
    if not reason:
        raise RegisterRefused("a reason is required (--reason / reason)")
    if len(reason) > MAX_REASON:
        raise RegisterRefused(f"a reason is at most {MAX_REASON} characters")
    return reason


class Entry(BaseModel):
    """One entry of the list as the CLI and the API show it: never the address in clear."""

    model_config = ConfigDict(frozen=True)

    hash: str  # the first 16 hex digits of the keyed hash: enough to tell entries apart
    kind: str | None
    masked: str | None
    source: str | None
    by: str | None
    reason: str
    journey_id: str | None
    listed_at: datetime


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    hash: str
    action: str
    kind: str | None
    masked: str | None
    source: str
    by: str | None
    reason: str
    at: datetime


class AddResult(BaseModel):
    added: bool  # False: it was already listed (the first entry stays)
    entry: Entry


class ImportProblem(BaseModel):
    line: int
    problem: str


class ImportResult(BaseModel):
    added: int = 0
    already: int = 0
    rejected: list[ImportProblem] = []


@dataclass
class ImportLine:
    line: int
    address: str
    reason: str | None = None


def import_lines(text: str) -> list[ImportLine]:
    """An import file: one address a line, optionally `,reason` after it; blank lines, `#` comments
    and an `address[,reason]` header are skipped."""
    found: list[ImportLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        address, _, reason = stripped.partition(",")
        if number == 1 and address.strip().lower() == "address":
            continue
        found.append(ImportLine(number, address.strip(), reason.strip().strip('"') or None))
        if len(found) > MAX_IMPORT_LINES:
            raise RegisterRefused(f"an import holds at most {MAX_IMPORT_LINES} addresses")
    return found


class Register:
    """The shared do-not-contact list, by hand."""

    def __init__(self, db: Database, opt_outs: OptOuts | None = None) -> None:
        self.db = db
        self.opt_outs = opt_outs or OptOuts(db)

    async def add(self, raw: str, reason: str | None, by: str | None, source: str) -> AddResult:
        address, listing = parse_address(raw), Listing(why(reason), source, who(by))
        added = await self.opt_outs.add([address.value], listing.reason, None, source=source, by=listing.by)
        row = await self.opt_outs.entry(address.value)
        assert row is not None  # just listed, or listed before
        return AddResult(added=bool(added), entry=_entry(row))

    async def remove(self, raw: str, reason: str | None, by: str | None, source: str) -> Entry:
        address, listing = parse_address(raw), Listing(why(reason), source, who(by))
        row = await self.opt_outs.entry(address.value)
        if row is None:
            raise NotListed(f"{address.masked} is not on the do-not-contact list")
        if row.source == ERASURE:
            raise KeptListed(
                f"{address.masked} was listed by an erasure request ({row.reason}): it stays listed"
            )
        removed = await self.opt_outs.remove(address.value, listing)
        if removed is None:  # removed by someone else meanwhile
            raise NotListed(f"{address.masked} is not on the do-not-contact list")
        return _entry(removed)

    async def find(self, raw: str) -> Entry | None:
        row = await self.opt_outs.entry(parse_address(raw).value)
        return _entry(row) if row else None

    async def entries(self, limit: int | None = None) -> list[Entry]:
        return [_entry(row) for row in await self.opt_outs.entries(limit)]

    async def changes(self, raw: str | None = None, limit: int | None = None) -> list[Change]:
        key = self.opt_outs.key(parse_address(raw).value, None) if raw else None
        return [_change(row) for row in await self.opt_outs.changes(key, limit)]

    async def import_(
        self, lines: Iterable[ImportLine], reason: str | None, by: str | None, source: str = "import"
    ) -> ImportResult:
        """Every usable line listed (with its own reason, else `reason`); each bad line reported by
        its number, the rest still listed."""
        default, actor = (why(reason) if reason else None), who(by)
        result = ImportResult()
        for line in lines:
            try:
                address = parse_address(line.address)
                listed = why(line.reason or default)
            except RegisterRefused as refusal:
                result.rejected.append(ImportProblem(line=line.line, problem=refusal.reason))
                continue
            added = await self.opt_outs.add([address.value], listed, None, source=source, by=actor)
            if added:
                result.added += 1
            else:
                result.already += 1
        return result


async def journey_addresses(db: Database, journey_id: str) -> list[str]:
    """Every address a journey's client is known by: what its sends went to (the outbox) and the
    client's contacts in the portfolio. For an opt-out that arrives after the journey ended."""
    found: set[str] = set()
    async with db.session() as session:
        recipients = await session.scalars(
            select(OutboxRow.recipient)
            .where(OutboxRow.journey_id == journey_id, OutboxRow.channel != "operator_task")
            .distinct()
        )
        found.update(r for r in recipients if r and "*" not in r)  # a purged row's recipient is masked
        term = _TERM.search(journey_id)
        if term:
            ends = date(int(term[1][:4]), int(term[1][4:6]), int(term[1][6:]))
            rows = await session.execute(
                select(PolicyRow.number, ClientRow.phone, ClientRow.email, ClientRow.vk_id)
                .join(ClientRow, PolicyRow.client_id == ClientRow.id)
                .where(PolicyRow.expires_on == ends)
            )
            for number, *contacts in rows:
                if journey_id_of(number, ends) == journey_id:
                    found.update(c for c in contacts if c)
    return sorted(found)


def _entry(row: OptOutRow) -> Entry:
    return Entry(
        hash=row.address_hash[:16],
        kind=row.kind,
        masked=row.masked,
        source=row.source,
        by=row.added_by,
        reason=row.reason,
        journey_id=row.journey_id,
        listed_at=as_utc(row.created_at),
    )


def _change(row: OptOutChangeRow) -> Change:
    return Change(
        hash=row.address_hash[:16],
        action=row.action,
        kind=row.kind,
        masked=row.masked,
        source=row.source,
        by=row.actor,
        reason=row.reason,
        at=as_utc(row.at),
    )
