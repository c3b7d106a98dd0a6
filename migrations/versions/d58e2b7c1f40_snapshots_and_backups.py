"""snapshots and backups: a release's snapshot, a deployment's backup settings, and the backups table

Revision ID: d58e2b7c1f40
Revises: c41f7a2e9d13
Create Date: 2026-12-06 00:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import backend.models.types


# revision identifiers, used by Alembic.
revision = 'd58e2b7c1f40'
down_revision = 'c41f7a2e9d13'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot', sa.String(length=40), nullable=True))
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot_before_release', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('backup_schedule', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('backup_keep_last', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('backup_keep_daily', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('backup_keep_weekly', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('backup_scheduled_at', backend.models.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('pending_restore', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('restore_from', sa.Uuid(), nullable=True))
    op.create_table(
        'backups',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('deployment_id', sa.Uuid(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('trigger', sa.String(length=16), nullable=False),
        sa.Column('node', sa.String(length=64), nullable=True),
        sa.Column('storage', sa.String(length=64), nullable=False),
        sa.Column('vm_id', sa.Integer(), nullable=True),
        sa.Column('guest_kind', sa.String(length=8), nullable=True),
        sa.Column('release_version', sa.Integer(), nullable=True),
        sa.Column('upid', sa.String(length=255), nullable=True),
        sa.Column('volid', sa.String(length=512), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
        sa.Column('finished_at', backend.models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.create_index('ix_backups_deployment', ['deployment_id', 'created_at'], unique=False)


def downgrade():
    # The index goes with the table (MariaDB refuses to drop it alone: the foreign key needs it).
    op.drop_table('backups')
    # Dropped in place: a batch copy of deployments cannot write its generated columns (SQLite 3.35+ drops a plain
    # column itself).
    with op.batch_alter_table('deployments', schema=None, recreate='never') as batch_op:
        for column in ('restore_from', 'pending_restore', 'backup_scheduled_at', 'backup_keep_weekly', 'backup_keep_daily', 'backup_keep_last',
                       'backup_schedule', 'snapshot_before_release'):
            batch_op.drop_column(column)
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_column('snapshot')
