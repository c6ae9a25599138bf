"""Who may be contacted and which channels may send right now, checked at every send.

- Opt-outs: a client's "STOP", a do-not-contact told to the robot or an operator, recorded by address
  (phone, e-mail, VK id) so it holds for every journey of that client, on every channel. The list keeps
  only what suppression needs (152-FZ): a keyed hash of each address (HMAC-SHA256 with
  `settings.optout_hash_key`), never the address itself, so a leaked table names nobody. The key must
  stay the same for the list's lifetime: a hash made with another key matches nothing (migration 0005
  hashed the addresses stored before with the key configured when it ran).
- Channel pauses: when a provider refuses our account (no funds, bad credentials) the channel is
  paused for a while and an alert is logged; sends wait instead of burning retries on the provider.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from renewals.db.database import Database
from renewals.db.tables import ChannelPauseRow, OptOutRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.models import Channel

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

    async def add(self, addresses: list[str], reason: str, journey_id: str | None) -> None:
        now = datetime.now(UTC)
        async with self.db.session() as session, session.begin():
            for address in {self.key(a, journey_id) for a in addresses if a}:
                values = {
                    "address_hash": address,
                    "reason": reason,
                    "journey_id": journey_id,
                    "created_at": now,
                }
                await session.execute(
                    insert_ignoring_conflict(self.db.dialect, OptOutRow, values, ["address_hash"])
                )

    async def reason(self, address: str, journey_id: str | None = None) -> str | None:
        async with self.db.session() as session:
            row = await session.get(OptOutRow, self.key(address, journey_id))
        return row.reason if row else None


class ChannelPauses:
    """Pauses live in the database so every worker honours them; read at most every few seconds."""

    def __init__(self, db: Database, pause: timedelta = timedelta(minutes=15)) -> None:
        self.db = db
        self.pause = pause
        self._cache: dict[str, ChannelPauseRow] = {}
        self._read_at = datetime.min.replace(tzinfo=UTC)

    async def paused(self, channel: Channel, now: datetime) -> ChannelPauseRow | None:
        """The pause in force at `now` (the Temporal clock's, so time-skipping tests agree)."""
        wall = datetime.now(UTC)
        if wall - self._read_at > timedelta(seconds=5):
            async with self.db.session() as session:
                rows = (await session.execute(select(ChannelPauseRow))).scalars().all()
            self._cache = {row.channel: row for row in rows}
            self._read_at = wall
        row = self._cache.get(channel.value)
        if row is None or _aware(row.paused_until) <= now:
            return None
        return row

    @staticmethod
    def until(row: ChannelPauseRow) -> datetime:
        return _aware(row.paused_until)

    async def pause_channel(self, channel: Channel, reason: str, now: datetime) -> datetime:
        until = now + self.pause
        async with self.db.session() as session, session.begin():
            await session.merge(
                ChannelPauseRow(channel=channel.value, paused_until=until, reason=reason, updated_at=now)
            )
        self._read_at = datetime.min.replace(tzinfo=UTC)
        log.error("ALERT channel %s paused until %s: %s", channel.value, until.isoformat(), reason)
        return until


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone columns; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
