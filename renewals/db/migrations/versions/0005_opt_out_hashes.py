"""opt-out list: a keyed hash of each address instead of the address (152-FZ: keep what suppression needs)

Revision ID: 0005
Revises: 0004

Each stored address is hashed as `renewals.delivery.OptOuts.key` hashes it (HMAC-SHA256 of the stripped,
lower-cased address, with `settings.optout_hash_key`, so run this with the workers' key), and the clear
column is dropped. A per-journey row of `renewals simulate` ("<journey id>|<address>") keeps its prefix.
There is no way back: the addresses are gone, so `downgrade` refuses.
"""

import hashlib
import hmac

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

opt_outs = sa.table(
    "opt_outs",
    sa.column("address", sa.String),
    sa.column("journey_id", sa.String),
    sa.column("address_hash", sa.String),
)


def _hashed(address: str, journey_id: str | None, key: bytes) -> str:
    prefix = f"{journey_id}|" if journey_id and address.startswith(f"{journey_id}|") else ""
    clear = address.removeprefix(prefix).strip().lower()
    return prefix + hmac.new(key, clear.encode(), hashlib.sha256).hexdigest()


def upgrade() -> None:
    from renewals.delivery import optout_hash_key

    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address_hash", sa.String(length=254), nullable=True))
    connection = op.get_bind()
    key = optout_hash_key()
    seen: set[str] = set()
    for address, journey_id in connection.execute(sa.select(opt_outs.c.address, opt_outs.c.journey_id)).all():
        hashed = _hashed(address, journey_id, key)
        where = opt_outs.c.address == address
        if hashed in seen:  # the same address listed twice (different spelling): keep the first
            connection.execute(sa.delete(opt_outs).where(where))
            continue
        seen.add(hashed)
        connection.execute(sa.update(opt_outs).where(where).values(address_hash=hashed))
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.alter_column("address_hash", existing_type=sa.String(length=254), nullable=False)
        batch_op.drop_column("address")  # PostgreSQL drops the primary key with it
        batch_op.create_primary_key("opt_outs_pkey", ["address_hash"])


def downgrade() -> None:
    raise RuntimeError(
        "0005 cannot be undone: the do-not-contact list holds only keyed hashes, the addresses are gone "
        "(an older version would no longer suppress anyone on it)"
    )
