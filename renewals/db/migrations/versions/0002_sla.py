"""partner issuance SLA: application snapshots and status periods

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_applications",
        sa.Column("workflow_id", sa.String(length=160), nullable=False),
        sa.Column("application_id", sa.String(length=64), nullable=False),
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("process_flag", sa.Boolean(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id"),
    )
    with op.batch_alter_table("sla_applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_applications_partner"), ["partner"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_applications_submitted_at"), ["submitted_at"], unique=False)

    op.create_table(
        "sla_status_periods",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=160), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("business_seconds", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sla_status_periods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_status_periods_workflow_id"), ["workflow_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sla_status_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_status_periods_workflow_id"))
    op.drop_table("sla_status_periods")
    with op.batch_alter_table("sla_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_applications_submitted_at"))
        batch_op.drop_index(batch_op.f("ix_sla_applications_partner"))
    op.drop_table("sla_applications")
