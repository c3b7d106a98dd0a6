"""releases, log lines, app settings and env of deployments

Revision ID: 94b76ba09a1f
Revises: 949e0680def1
Create Date: 2026-11-21 11:01:56.096324

"""
from alembic import op
import sqlalchemy as sa

import backend.models.types  # noqa: F401  (custom column types)


# revision identifiers, used by Alembic.
revision = '94b76ba09a1f'
down_revision = '949e0680def1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('log_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('deployment_id', sa.Uuid(), nullable=False),
    sa.Column('release_version', sa.Integer(), nullable=False),
    sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
    sa.Column('stream', sa.String(length=8), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], name=op.f('fk_log_lines_deployment_id_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_log_lines'))
    )
    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.create_index('ix_log_lines_deployment', ['deployment_id', 'id'], unique=False)

    op.create_table('releases',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('deployment_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('branch', sa.String(length=255), nullable=False),
    sa.Column('requested_commit', sa.String(length=40), nullable=True),
    sa.Column('commit_sha', sa.String(length=40), nullable=True),
    sa.Column('rollback_of', sa.Integer(), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('env_encrypted', sa.Text(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
    sa.Column('started_at', backend.models.types.UTCDateTime(), nullable=True),
    sa.Column('finished_at', backend.models.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], name=op.f('fk_releases_deployment_id_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_releases')),
    sa.UniqueConstraint('deployment_id', 'version', name='uq_releases_deployment_version')
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('build_command', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('start_command', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('port', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('health_check_path', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('env_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('ssh_host_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('live_release', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('served_port', sa.Integer(), nullable=True))



def downgrade():
    # Dropped in place: a batch copy of deployments cannot write its generated columns (SQLite 3.35+
    # drops a plain column itself).
    with op.batch_alter_table('deployments', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('served_port')
        batch_op.drop_column('live_release')
        batch_op.drop_column('ssh_host_key')
        batch_op.drop_column('env_encrypted')
        batch_op.drop_column('health_check_path')
        batch_op.drop_column('port')
        batch_op.drop_column('start_command')
        batch_op.drop_column('build_command')

    op.drop_table('releases')
    # Dropping the table drops its index too (MariaDB refuses to drop an index a foreign key uses).
    op.drop_table('log_lines')
