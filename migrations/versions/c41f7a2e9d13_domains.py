"""domains: the custom hostnames a deployment answers at behind the edge router

Revision ID: c41f7a2e9d13
Revises: b7e3d91c4a20
Create Date: 2026-12-06 00:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

import backend.models.types


# revision identifiers, used by Alembic.
revision = 'c41f7a2e9d13'
down_revision = 'b7e3d91c4a20'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'domains',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('deployment_id', sa.Uuid(), nullable=False),
        sa.Column('hostname', sa.String(length=253), nullable=False),
        sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('hostname'),
    )
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domains_deployment_id'), ['deployment_id'], unique=False)


def downgrade():
    # The index goes with the table (MariaDB refuses to drop it alone: the foreign key needs it).
    op.drop_table('domains')
