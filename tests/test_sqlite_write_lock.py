"""A write request on SQLite takes the write lock when it begins, whatever the session had open before it."""
import sqlite3

import pytest
from sqlalchemy import select


def test_a_login_after_a_stale_read_and_another_process_commit_is_not_refused(app, client, make_user):
    from app.auth.models import User
    from app.extensions import db

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's deferred-transaction upgrade is the subject")
    user = make_user()
    email, password = user.email, user.password
    db.session.scalar(select(User.id))  # a read transaction left open, as a test's lookups leave one
    other = sqlite3.connect(db.engine.url.database, isolation_level=None)  # another process's commit
    other.execute("UPDATE users SET name = 'Renamed' WHERE id = ?", (user.id,))
    other.close()

    res = client.post("/auth/login", json={"email": email, "password": password})

    assert res.status_code == 200, res.get_json()
    assert res.get_json()["token_type"] == "Bearer"
