"""the do-not-contact register (who, why, when, from where) and operator tasks closed with their journey

Revision ID: 0007
Revises: 0006

- opt_outs: kind (phone, email, vk), masked (the address as logs show it), source (journey,
  webhook:<source>, cli, http, import, erasure) and added_by (who). Rows listed before keep a null kind
  and masked address (only the hash was kept); their source is inferred: `erasure` for an erasure
  request's, `journey` for a journey's.
- opt_out_changes: every addition and removal, with who, why and when.
- operator_tasks.closed_reason: why a task closed without an operator's outcome (its journey ended).
  A task still open whose journey has already ended (the journeys table says so) is closed here, with
  the journey's outcome as the reason: operators would otherwise call clients who already paid.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ENDED = ("paid", "renewed", "opted_out", "cancelled", "refused", "lapsed")  # journey_api.TERMINAL_STAGES

opt_outs = sa.table(
    "opt_outs",
    sa.column("reason", sa.Text),
    sa.column("journey_id", sa.String),
    sa.column("source", sa.String),
)
tasks = sa.table(
    "operator_tasks",
    sa.column("journey_id", sa.String),
    sa.column("status", sa.String),
    sa.column("closed_at", sa.DateTime(timezone=True)),
    sa.column("closed_reason", sa.Text),
)
journeys = sa.table("journeys", sa.column("id", sa.String), sa.column("stage", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("masked", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("added_by", sa.String(length=100), nullable=True))
    op.create_table(
        "opt_out_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address_hash", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=True),
        sa.Column("masked", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("journey_id", sa.String(length=160), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("opt_out_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opt_out_changes_address_hash"), ["address_hash"], unique=False)
    with op.batch_alter_table("operator_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_reason", sa.Text(), nullable=True))

    connection = op.get_bind()
    connection.execute(
        sa.update(opt_outs).where(opt_outs.c.reason.like("erasure request%")).values(source="erasure")
    )
    connection.execute(
        sa.update(opt_outs)
        .where(opt_outs.c.source.is_(None), opt_outs.c.journey_id.is_not(None))
        .values(source="journey")
    )
    now = datetime.now(UTC)
    for stage in ENDED:  # one statement per outcome, however many journeys ended with it
        ended = sa.select(journeys.c.id).where(journeys.c.stage == stage)
        connection.execute(
            sa.update(tasks)
            .where(tasks.c.journey_id.in_(ended), tasks.c.status != "closed")
            .values(status="closed", closed_at=now, closed_reason=f"the journey ended: {stage}")
        )


def downgrade() -> None:
    with op.batch_alter_table("operator_tasks", schema=None) as batch_op:
        batch_op.drop_column("closed_reason")
    with op.batch_alter_table("opt_out_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opt_out_changes_address_hash"))
    op.drop_table("opt_out_changes")
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.drop_column("added_by")
        batch_op.drop_column("source")
        batch_op.drop_column("masked")
        batch_op.drop_column("kind")
