"""embeddings.dtype: vectors stored as float16 (the float32 rows converted in place)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:00:00
"""
from alembic import op
import numpy as np
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BATCH = 5000
_table = sa.table('embeddings', sa.column('product_id', sa.String), sa.column('model', sa.String),
                  sa.column('kind', sa.String), sa.column('vector', sa.LargeBinary), sa.column('dtype', sa.String))


def _convert(source: str, target: str) -> None:
    """Rewrite every `source` row's vector as `target`, a batch at a time (a large table never sits in memory)."""
    conn = op.get_bind()
    pk = (_table.c.product_id, _table.c.model, _table.c.kind)
    while True:
        rows = conn.execute(sa.select(*pk, _table.c.vector).where(_table.c.dtype == source).limit(BATCH)).all()
        if not rows:
            return
        for pid, model, kind, blob in rows:
            vec = np.frombuffer(blob, dtype=source).astype(target).tobytes()
            conn.execute(_table.update().where(_table.c.product_id == pid, _table.c.model == model,
                                               _table.c.kind == kind).values(vector=vec, dtype=target))


def upgrade() -> None:
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dtype', sa.String(length=8), server_default='float32', nullable=False))
    _convert('float32', 'float16')


def downgrade() -> None:
    _convert('float16', 'float32')
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.drop_column('dtype')
