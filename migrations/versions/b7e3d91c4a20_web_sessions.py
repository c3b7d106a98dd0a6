"""web_sessions: people's dashboard sessions, kept on the server so that they can be ended

Revision ID: b7e3d91c4a20
Revises: 8a4f1c9e2d57
Create Date: 2026-12-05 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import backend.models.types


# revision identifiers, used by Alembic.
revision = 'b7e3d91c4a20'
down_revision = '8a4f1c9e2d57'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('session_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', backend.models.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', backend.models.types.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', backend.models.types.UTCDateTime(), nullable=True),
        sa.Column('ip_address', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_hash'),
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_web_sessions_user', ['user_id', 'created_at'], unique=False)


def downgrade():
    # The table's indexes go with it (MariaDB refuses to drop ix_web_sessions_user alone: its foreign key needs it).
    op.drop_table('web_sessions')
