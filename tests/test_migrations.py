"""The migrations are the schema: after upgrading, nothing in the models is left for autogenerate."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory


def test_migrations_have_one_head_and_match_the_models(app):
    from app.extensions import db, migrate

    script = ScriptDirectory.from_config(migrate.get_config())
    assert len(script.get_heads()) == 1, "merge the migration branches"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), db.metadata)
    assert diff == []
