"""initial schema: deployments

Revision ID: e664fdfb9f44
Revises: 
Create Date: 2026-11-21 09:29:19.688494

"""
from alembic import op
import sqlalchemy as sa

import backend.models.types  # noqa: F401  (custom column types)


# revision identifiers, used by Alembic.
revision = 'e664fdfb9f44'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('deployments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('active_name', sa.String(length=63), sa.Computed('CASE WHEN deleted_at IS NULL THEN name ELSE NULL END', persisted=True), nullable=True),
    sa.Column('deployment_type', sa.Enum('vm', 'lxc', name='deployment_type', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('framework', sa.String(length=32), nullable=False),
    sa.Column('github_url', sa.String(length=255), nullable=False),
    sa.Column('branch', sa.String(length=255), nullable=False),
    sa.Column('resources', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'provisioning', 'deploying', 'running', 'stopped', 'failed', 'deleting', 'deleted', name='deployment_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=True),
    sa.Column('vm_id', sa.Integer(), nullable=True),
    sa.Column('active_vm_id', sa.Integer(), sa.Computed('CASE WHEN deleted_at IS NULL THEN vm_id ELSE NULL END', persisted=True), nullable=True),
    sa.Column('ip_address', sa.String(length=45), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', backend.models.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', backend.models.types.UTCDateTime(), nullable=False),
    sa.Column('deployed_at', backend.models.types.UTCDateTime(), nullable=True),
    sa.Column('deleted_at', backend.models.types.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('vm_id IS NULL OR vm_id >= 100', name=op.f('ck_deployments_vm_id_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments')),
    sa.UniqueConstraint('active_name', name=op.f('uq_deployments_active_name')),
    sa.UniqueConstraint('active_vm_id', name=op.f('uq_deployments_active_vm_id'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_created_at', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_deployments_name', ['name', 'id'], unique=False)
        batch_op.create_index('ix_deployments_status', ['status'], unique=False)
        batch_op.create_index('ix_deployments_updated_at', ['updated_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deployments_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deployments_vm_id'), ['vm_id'], unique=False)

    


def downgrade():
    
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployments_vm_id'))
        batch_op.drop_index(batch_op.f('ix_deployments_user_id'))
        batch_op.drop_index('ix_deployments_updated_at')
        batch_op.drop_index('ix_deployments_status')
        batch_op.drop_index('ix_deployments_name')
        batch_op.drop_index('ix_deployments_created_at')

    op.drop_table('deployments')
    
