"""What a transaction costs the web process besides its round trips, by how it is opened.

A completion group's transaction used to run in the ORM session (`tx.write()`: a session
transaction, a connection checked out of the pool and returned); the committers now run theirs on
a connection each holds (`tx.write_on`). This runs the same trivial transaction (one statement on
the driver's cursor, as the engine's are, then COMMIT) four ways, in turns, in one process, and
prints the process CPU of each as a ratio to the driver's own transaction on a held connection:

- session:  `tx.write()` and `db.session.connection()`, as the engine's other use cases do;
- pooled:   `db.engine.begin()`, a Core transaction on a connection taken from the pool;
- held:     `tx.write_on(conn)` on a Connection kept open, as a committer does;
- driver:   psycopg alone on a held connection (the floor: no SQLAlchemy at all).

    .venv/bin/python bench/transaction_cost.py [--transactions 500] [--rounds 7]

Needs PostgreSQL (BENCH_DATABASE_URL's server, database `postgres` by default) and Redis.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sqlalchemy import literal, select  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()

    from app import create_app
    from app.engine import driver, tx
    from app.extensions import db

    app = create_app(env={"DATABASE_URL": ADMIN_URL, "LOG_LEVEL": "WARNING",
                          "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")})
    statement = driver.Statement(select(literal(1)))
    with app.app_context():
        held = db.engine.connect()
    raw = held.connection.dbapi_connection

    def session():
        with app.app_context(), tx.write():
            statement.execute(db.session.connection(), {}).fetchall()

    def pooled():
        with app.app_context(), db.engine.begin() as conn:
            statement.execute(conn, {}).fetchall()

    def held_connection():
        with app.app_context(), tx.write_on(held):
            statement.execute(held, {}).fetchall()

    def driver_only():
        with app.app_context():
            raw.cursor().execute("SELECT 1").fetchall()
            raw.commit()

    ways = {"session": session, "pooled": pooled, "held": held_connection, "driver": driver_only}
    spent = {name: [] for name in ways}
    for way in ways.values():  # warm: pool, prepared statements
        for _ in range(100):
            way()
    for _ in range(opts.rounds):
        for name, way in ways.items():
            started = time.process_time()
            for _ in range(opts.transactions):
                way()
            spent[name].append((time.process_time() - started) / opts.transactions * 1e6)
    floor = statistics.median(spent["driver"])
    for name in ways:
        cost = statistics.median(spent[name])
        print(f"{name:8s} {cost:6.0f} µs CPU per transaction  {cost / floor:4.2f} × driver  "
              f"(+{cost - floor:.0f} µs)")
    held.close()


if __name__ == "__main__":
    main()
