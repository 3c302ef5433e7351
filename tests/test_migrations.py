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


def test_on_postgresql_an_interrupted_concurrent_index_build_is_built_again(redis_url):
    """Migrations build engine_jobs' indexes CONCURRENTLY, so the table stays writable during an
    upgrade. A build that failed leaves an INVALID index of its name; upgrading again replaces it."""
    import psycopg
    import pytest
    from flask_migrate import upgrade

    from app import create_app
    from app.engine import deploy, instances
    from tests import support
    from tests.engine.helpers import one_task

    pg = support.PostgresForTests()
    if not pg.available:
        pytest.skip(pg.reason)
    url = pg.start()
    try:
        if not pg.created:
            pytest.skip("a database of its own is needed (no CREATE DATABASE right)")
        app = create_app(env={"DATABASE_URL": url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"})
        with app.app_context():
            upgrade(revision="0006")
            deploy.deploy(tenant="t", xml=one_task("p", "work"))
            for _ in range(2):
                instances.start(tenant="t", process_id="p")
        name = "ix_engine_jobs_in_flight_deadline"
        with psycopg.connect(url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.UniqueViolation):  # both jobs have tenant "t"
                conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON engine_jobs (tenant)")
            valid = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s"
            assert conn.execute(valid, (name,)).fetchall() == [(False,)]
        with app.app_context():
            upgrade(revision="heads")
        with psycopg.connect(url) as conn:
            assert conn.execute(valid, (name,)).fetchall() == [(True,)]
            (definition,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)).fetchone()
        assert "UNIQUE" not in definition and "(available_at) WHERE" in definition, definition
    finally:
        pg.close()
