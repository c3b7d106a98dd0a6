"""password_hash of users (people log in with a password for a named API token)

Revision ID: 8a4f1c9e2d57
Revises: 5c2d7e1a9b30
Create Date: 2026-12-11 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8a4f1c9e2d57'
down_revision = '5c2d7e1a9b30'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))


def downgrade():
    # Dropped in place (SQLite 3.35+ drops a plain column itself): a batch copy of users would drop and re-create
    # the table api_tokens and deployments refer to, for no gain.
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('password_hash')
