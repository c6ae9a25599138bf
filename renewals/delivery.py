"""Who may be contacted and which channels may send right now, checked at every send.

- Opt-outs: a client's "STOP", a do-not-contact told to the robot or an operator, recorded by address
  (phone, e-mail, VK id) so it holds for every journey of that client, on every channel. The list keeps
  only what suppression needs (152-FZ): a keyed hash of each address (HMAC-SHA256 with
  `settings.optout_hash_key`), never the address itself, so a leaked table names nobody. The key must
  stay the same for the list's lifetime: a hash made with another key matches nothing (migration 0005
  hashed the addresses stored before with the key configured when it ran). Each entry says what kind
  of address it is, the address masked (`+7916***4567`), where it came from (`source`), who listed it
  and why; every addition and removal is kept in `opt_out_changes` (migration 0007). Managing the list
  by hand (`renewals optout …`, `/operators/optouts`): `renewals.optout_register`.
- Channel pauses: when a provider refuses our account (no funds, bad credentials) the channel is
  paused for a while and one alert per pause goes to the log and the configured alert destination
  (`renewals.alerts`); sends wait instead of burning retries on the provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, delete, select, update

from renewals.alerts import Alert, Alerts, current_alerts
from renewals.db.database import Database, as_utc
from renewals.db.tables import ChannelPauseRow, OptOutChangeRow, OptOutRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.models import Channel
from renewals.privacy import mask_email, mask_phone, mask_vk

if TYPE_CHECKING:
    from renewals.settings import Settings

log = logging.getLogger(__name__)
# The development stack's and the tests' key when none is configured: fixed, so a list made in one run
# still suppresses in the next. Production configures its own (RENEWALS_OPTOUT_HASH_KEY).
DEV_OPTOUT_HASH_KEY = b"renewals-development-do-not-contact-key"


def normalise_address(address: str) -> str:
    return address.strip().lower()


def optout_hash_key(settings: Settings | None = None) -> bytes:
    """The HMAC key of the do-not-contact list: `settings.optout_hash_key`, else the development key
    (with a warning when the real providers are configured: that is production)."""
    if settings is None:
        from renewals.settings import get_settings

        settings = get_settings()
    secret = getattr(settings, "optout_hash_key", None)
    if secret is not None:
        return str(secret.get_secret_value()).encode()
    if settings.channels == "providers":
        log.warning("RENEWALS_OPTOUT_HASH_KEY is not set: the do-not-contact list uses the development key")
    return DEV_OPTOUT_HASH_KEY


def address_hash(address: str, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the normalised address: what the list stores and looks up."""
    return hmac.new(key, normalise_address(address).encode(), hashlib.sha256).hexdigest()


def address_kind(address: str) -> str:
    """phone, email or vk, for an address as journeys hold them (E.164 phone, e-mail, VK user id)."""
    text = address.strip()
    if "@" in text:
        return "email"
    return "phone" if text.startswith("+") else "vk"


def masked_address(address: str, kind: str | None = None) -> str:
    """The address as a log line or the register's listing may show it."""
    kind = kind or address_kind(address)
    text = address.strip()
    return {"phone": mask_phone, "email": mask_email}.get(kind, mask_vk)(text)


@dataclass(frozen=True)
class Listing:
    """Who asked for an address to be listed (or removed), why, and through what."""

    reason: str
    source: str = "journey"  # journey, webhook:<source>, cli, http, import, erasure
    by: str | None = None  # the operator, for hand-made entries


class OptOuts:
    """The do-not-contact list. `per_journey` keeps each journey's list to itself: `renewals simulate`
    runs independent what-if scenarios, often for the same client, that must not silence each other."""

    def __init__(self, db: Database, per_journey: bool = False, hash_key: bytes | None = None) -> None:
        self.db = db
        self.per_journey = per_journey
        self.hash_key = optout_hash_key() if hash_key is None else hash_key

    def key(self, address: str, journey_id: str | None) -> str:
        """The row key an address is listed under (`Outbox.claim` reads it in the same transaction):
        the address's keyed hash, behind the journey id when each journey keeps its own list."""
        key = address_hash(address, self.hash_key)
        return f"{journey_id}|{key}" if self.per_journey and journey_id else key

    async def add(
        self,
        addresses: list[str],
        reason: str,
        journey_id: str | None,
        *,
        source: str = "journey",
        by: str | None = None,
    ) -> list[str]:
        """List the addresses (an address already listed keeps its first entry); the keys newly
        listed are returned, and each is written to the change log with who, why and when."""
        now = datetime.now(UTC)
        added: list[str] = []
        keyed = {self.key(a, journey_id): a.strip() for a in addresses if a and a.strip()}
        async with self.db.session() as session, session.begin():
            for key, address in keyed.items():
                kind = address_kind(address)
                entry = {"kind": kind, "masked": masked_address(address, kind), "source": source}
                values = {
                    "address_hash": key,
                    "reason": reason,
                    "journey_id": journey_id,
                    "created_at": now,
                    "added_by": by,
                    **entry,
                }
                inserted = cast(
                    "CursorResult[Any]",
                    await session.execute(
                        insert_ignoring_conflict(self.db.dialect, OptOutRow, values, ["address_hash"])
                    ),
                )
                if inserted.rowcount == 1:
                    added.append(key)
                    session.add(
                        OptOutChangeRow(
                            address_hash=key,
                            action="added",
                            actor=by,
                            reason=reason,
                            journey_id=journey_id,
                            at=now,
                            **entry,
                        )
                    )
        return added

    async def remove(self, address: str, listing: Listing) -> OptOutRow | None:
        """Take the address off the list (the change log keeps who, why and when); None if it was
        not listed. Only the shared list: a simulation's per-journey lists are never edited by hand."""
        key = address_hash(address, self.hash_key)
        async with self.db.session() as session, session.begin():
            row = await session.get(OptOutRow, key)
            if row is None:
                return None
            await session.execute(delete(OptOutRow).where(OptOutRow.address_hash == key))
            session.add(
                OptOutChangeRow(
                    address_hash=key,
                    action="removed",
                    kind=row.kind or address_kind(address),
                    masked=row.masked or masked_address(address),
                    source=listing.source,
                    actor=listing.by,
                    reason=listing.reason,
                    journey_id=None,
                    at=datetime.now(UTC),
                )
            )
        return row

    async def entry(self, address: str, journey_id: str | None = None) -> OptOutRow | None:
        async with self.db.session() as session:
            return await session.get(OptOutRow, self.key(address, journey_id))

    async def entries(self, limit: int | None = None) -> list[OptOutRow]:
        """The shared list, newest first (a simulation's per-journey rows, "<journey>|<hash>", left out)."""
        query = (
            select(OptOutRow)
            .where(OptOutRow.address_hash.not_like("%|%"))
            .order_by(OptOutRow.created_at.desc(), OptOutRow.address_hash)
        )
        async with self.db.session() as session:
            return list((await session.scalars(query.limit(limit))).all())

    async def changes(
        self, address_hash: str | None = None, limit: int | None = None
    ) -> list[OptOutChangeRow]:
        """The change log, newest first; of one entry when its hash is given."""
        query = select(OptOutChangeRow).order_by(OptOutChangeRow.at.desc(), OptOutChangeRow.id.desc())
        if address_hash is not None:
            query = query.where(OptOutChangeRow.address_hash == address_hash)
        async with self.db.session() as session:
            return list((await session.scalars(query.limit(limit))).all())

    async def reason(self, address: str, journey_id: str | None = None) -> str | None:
        async with self.db.session() as session:
            row = await session.get(OptOutRow, self.key(address, journey_id))
        return row.reason if row else None


class ChannelPauses:
    """Pauses live in the database so every worker honours them; read at most every few seconds."""

    def __init__(
        self, db: Database, pause: timedelta = timedelta(minutes=15), alerts: Alerts | None = None
    ) -> None:
        """`alerts`: where a pause's alert goes (default: the process's sink, `current_alerts()`)."""
        self.db = db
        self.pause = pause
        self.alerts = alerts
        self._cache: dict[str, ChannelPauseRow] = {}
        self._read_at = datetime.min.replace(tzinfo=UTC)
        self._reading: asyncio.Lock | None = None

    async def paused(self, channel: Channel, now: datetime) -> ChannelPauseRow | None:
        """The pause in force at `now` (the Temporal clock's, so time-skipping tests agree). The
        table is read again once it is 5 s old, by one of the sends that find it so: the others
        wait for that read (when 60 sends met a stale cache at once, each read it: 2.3 % of the
        worker's main thread in the burst's profile)."""
        if self._stale():
            self._reading = self._reading or asyncio.Lock()
            async with self._reading:
                if self._stale():  # not read meanwhile by the send that held the lock
                    wall = datetime.now(UTC)
                    async with self.db.session() as session:
                        rows = (await session.execute(select(ChannelPauseRow))).scalars().all()
                    self._cache = {row.channel: row for row in rows}
                    self._read_at = wall
        row = self._cache.get(channel.value)
        if row is None or as_utc(row.paused_until) <= now:
            return None
        return row

    def _stale(self) -> bool:
        return datetime.now(UTC) - self._read_at > timedelta(seconds=5)

    @staticmethod
    def until(row: ChannelPauseRow) -> datetime:
        return as_utc(row.paused_until)

    async def pause_channel(self, channel: Channel, reason: str, now: datetime) -> datetime:
        """Pause the channel until `now + pause` (extending a pause in force). The one caller that
        *starts* a pause — the row is new, or the old pause is over — raises its alert, decided by the
        database in one statement, so every send that meets the same refusal, on any worker, makes
        one alert per pause, not one per attempt. `reason` is "<ErrorType>: <message>"; the alert
        carries only the type (a provider's message may quote an address)."""
        until = now + self.pause
        values = {"channel": channel.value, "paused_until": until, "reason": reason, "updated_at": now}
        async with self.db.session() as session, session.begin():
            inserted = await session.execute(
                insert_ignoring_conflict(self.db.dialect, ChannelPauseRow, values, ["channel"])
            )
            started = _rowcount(inserted) == 1
            if not started:
                over = ChannelPauseRow.paused_until <= now
                same = ChannelPauseRow.channel == channel.value
                restarted = await session.execute(update(ChannelPauseRow).where(same, over).values(**values))
                started = _rowcount(restarted) == 1
            if not started:
                await session.execute(
                    update(ChannelPauseRow).where(ChannelPauseRow.channel == channel.value).values(**values)
                )
        self._read_at = datetime.min.replace(tzinfo=UTC)
        if started:
            alert = Alert(
                key=f"channel_paused:{channel.value}:{now.isoformat()}",  # the moment this pause started
                kind="channel_paused",
                channel=channel.value,
                error_type=reason.partition(":")[0] or "ChannelPaused",
                until=until,
            )
            (self.alerts or current_alerts()).raise_alert(alert)
        else:
            log.warning("channel %s still paused, now until %s", channel.value, until.isoformat())
        return until


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
