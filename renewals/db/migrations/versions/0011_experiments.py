"""holdout experiments (the experiments as registered, each journey's arm) and agents' measured rates

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("hold_out", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("salt_hash", sa.String(length=64), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "experiment_arms",
        sa.Column("journey_id", sa.String(length=160), nullable=False),
        sa.Column("experiment", sa.String(length=63), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("policy_number", sa.String(length=64), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("product", sa.String(length=16), nullable=False),
        sa.Column("segment", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "experiment"),
    )
    op.create_index("ix_experiment_arms_experiment", "experiment_arms", ["experiment"])
    op.create_index("ix_experiment_arms_expires_on", "experiment_arms", ["expires_on"])
    op.create_table(
        "agent_measured_rates",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("line", sa.String(length=16), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("secured", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("computed_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "line"),
    )


def downgrade() -> None:
    op.drop_table("agent_measured_rates")
    op.drop_index("ix_experiment_arms_expires_on", table_name="experiment_arms")
    op.drop_index("ix_experiment_arms_experiment", table_name="experiment_arms")
    op.drop_table("experiment_arms")
    op.drop_table("experiments")
