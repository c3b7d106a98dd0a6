"""release_command of deployments (the release phase)

Revision ID: 5c2d7e1a9b30
Revises: 34b225eb44f4
Create Date: 2026-12-04 23:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c2d7e1a9b30'
down_revision = '34b225eb44f4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('release_command', sa.Text(), nullable=True))


def downgrade():
    # Dropped in place: a batch copy of deployments cannot write its generated columns (SQLite 3.35+ drops a plain
    # column itself).
    with op.batch_alter_table('deployments', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('release_command')
