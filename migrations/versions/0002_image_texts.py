"""image_texts: the words printed on product images, keyed by image sha256

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('image_texts',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('reader', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    with op.batch_alter_table('image_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_texts_outcome'), ['outcome'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image_texts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_texts_outcome'))
    op.drop_table('image_texts')
