"""policy numbers in their one normal form, wherever a number is a key

Revision ID: 0009
Revises: 0008

Numbers stored before `renewals.models.normal_policy_number` kept their spaces, slashes and
look-alike letters as the file gave them (`XXX0123456789`, `ХХХ 0123456789`), so a re-import in the
normal form became a second row of the same term. Each number is rewritten in the normal form; where
that makes two rows of one term, the row already in normal form (the newer import) stays and the
other goes. The portal's renewal rows merge too (a draft, quote or payment seen on either counts).
The journeys table and operator tasks keep the number a journey was started with: it names a running
workflow, whose id Temporal never changes (see docs/versioning.md, "Policy numbers").
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

policies = sa.table(
    "policies", sa.column("id", sa.Integer), sa.column("number", sa.String), sa.column("expires_on", sa.Date)
)
portal = sa.table(
    "portal_renewals",
    sa.column("policy_number", sa.String),
    sa.column("expires_on", sa.Date),
    sa.column("draft", sa.Boolean),
    sa.column("quote", sa.Boolean),
    sa.column("paid", sa.Boolean),
)


def upgrade() -> None:
    from renewals.models import normal_policy_number

    connection = op.get_bind()
    rows = connection.execute(sa.select(policies.c.id, policies.c.number, policies.c.expires_on)).all()
    by_term: dict[tuple[str, object], list[tuple[int, str]]] = {}
    for row in rows:
        by_term.setdefault((normal_policy_number(row.number), row.expires_on), []).append(
            (row.id, row.number)
        )
    for (normal, _), found in by_term.items():
        keep = next(
            (row_id for row_id, number in found if number == normal), min(row_id for row_id, _ in found)
        )
        gone = [row_id for row_id, _ in found if row_id != keep]
        if gone:
            connection.execute(sa.delete(policies).where(policies.c.id.in_(gone)))
        if dict(found)[keep] != normal:
            connection.execute(sa.update(policies).where(policies.c.id == keep).values(number=normal))

    groups: dict[tuple[str, object], list[Any]] = {}
    for renewal in connection.execute(sa.select(portal)).all():
        groups.setdefault((normal_policy_number(renewal.policy_number), renewal.expires_on), []).append(
            renewal
        )
    for (normal, expires_on), same in groups.items():
        flags = {name: any(getattr(r, name) for r in same) for name in ("draft", "quote", "paid")}
        kept = next((r for r in same if r.policy_number == normal), same[0])
        for renewal in same:
            term = (portal.c.policy_number == renewal.policy_number) & (portal.c.expires_on == expires_on)
            if renewal is kept:
                connection.execute(sa.update(portal).where(term).values(policy_number=normal, **flags))
            else:
                connection.execute(sa.delete(portal).where(term))


def downgrade() -> None:
    """Nothing to undo: the normal form is a valid spelling of every number it replaced."""
