"""outbox: index on the provider's message id (delivery reports are matched by it)

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_provider_message_id", "outbox", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_message_id", table_name="outbox")
