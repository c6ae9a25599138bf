"""policies: the client's time zone moves from the client row to each policy term

Revision ID: 0008
Revises: 0007

A client row is shared by one person's policies (phone, last and first name), so a time zone stored on
it made a second policy from another region overwrite the first one's, and a row that named no zone
took another row's. Each term now keeps the zone its own import row gave; existing terms take their
client's current one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DEFAULT_ZONE = "Europe/Moscow"


def upgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE policies SET timezone = "
        "(SELECT clients.timezone FROM clients WHERE clients.id = policies.client_id)"
    )
    op.execute(f"UPDATE policies SET timezone = '{DEFAULT_ZONE}' WHERE timezone IS NULL")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.alter_column("timezone", existing_type=sa.String(length=64), nullable=False)
    # Plain ALTER TABLE (SQLite ≥ 3.35 has DROP COLUMN): a batch copy of `clients` would drop the table
    # the policies' foreign key points at.
    op.execute("ALTER TABLE clients DROP COLUMN timezone")


def downgrade() -> None:
    """Back to one zone per client: a person's latest term's zone (the others' are lost)."""
    op.execute(f"ALTER TABLE clients ADD COLUMN timezone VARCHAR(64) NOT NULL DEFAULT '{DEFAULT_ZONE}'")
    op.execute(
        "UPDATE clients SET timezone = (SELECT policies.timezone FROM policies "
        "WHERE policies.client_id = clients.id ORDER BY policies.expires_on DESC LIMIT 1)"
    )
    op.execute(f"UPDATE clients SET timezone = '{DEFAULT_ZONE}' WHERE timezone IS NULL")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_column("timezone")
