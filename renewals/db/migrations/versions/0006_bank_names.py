"""policies.bank_name: a mortgage's bank as the portfolio names it («ПАО Сбербанк», «ВТБ»)

Revision ID: 0006
Revises: 0005

`bank` keeps what the rules need (SBER or OTHER, derived from the name); `bank_name` keeps the name
as given, for reports. Existing rows had only the codes: their name stays empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_column("bank_name")
