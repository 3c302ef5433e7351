"""merge engine, projects and notifications

Revision ID: 0005
Revises: 0002, 0003, 0004
Create Date: 2026-11-24 03:02:35.067077

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # noqa: F401  (autogenerate writes JSONB(astext_type=Text()))

import app.types  # noqa: F401  (our column types)


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = ('0002', '0003', '0004')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
