"""deployment events, job leases, IP reservations

Revision ID: 949e0680def1
Revises: e664fdfb9f44
Create Date: 2026-11-21 09:44:30.312192

"""
from alembic import op
import sqlalchemy as sa

import backend.models.types  # noqa: F401  (custom column types)


# revision identifiers, used by Alembic.
revision = '949e0680def1'
down_revision = 'e664fdfb9f44'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('deployment_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('deployment_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('upid', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], name=op.f('fk_deployment_events_deployment_id_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment_events'))
    )
    with op.batch_alter_table('deployment_events', schema=None) as batch_op:
        batch_op.create_index('ix_deployment_events_deployment', ['deployment_id', 'id'], unique=False)

    op.create_table('ip_reservations',
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.Column('deployment_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], name=op.f('fk_ip_reservations_deployment_id_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_ip_reservations')),
    sa.UniqueConstraint('deployment_id', name=op.f('uq_ip_reservations_deployment_id'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('job_lease_until', backend.models.types.UTCDateTime(), nullable=True))



def downgrade():
    # Dropped in place: a batch copy of deployments cannot write its generated columns (SQLite 3.35+
    # drops a plain column itself).
    with op.batch_alter_table('deployments', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('job_lease_until')
        batch_op.drop_column('job_owner')

    op.drop_table('ip_reservations')
    # Dropping the table drops its index too (MySQL refuses to drop an index a foreign key uses).
    op.drop_table('deployment_events')
