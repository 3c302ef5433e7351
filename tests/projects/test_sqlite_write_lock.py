"""Writes on SQLite take the write lock when their transaction begins, whatever the session had open.

In WAL mode a deferred transaction that has read, then writes after another process committed, fails
at once with "database is locked" whatever the busy timeout. Each test leaves a read open on the
session, commits from another connection (as a worker or the web process would), then writes.
"""
import sqlite3

import pytest
from sqlalchemy import select


@pytest.fixture
def stale_read(app):
    """Leave a read transaction open on the session, then let another process commit."""
    from app.auth.models import User
    from app.extensions import db

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's deferred-transaction upgrade is the subject")

    def make():
        db.session.scalar(select(User.id))
        other = sqlite3.connect(db.engine.url.database, isolation_level=None)
        other.execute("UPDATE users SET name = name || '.'")
        other.close()
    return make


def test_a_write_request_after_a_stale_read_is_not_refused(client, make_user, stale_read):
    user = make_user()
    email, password = user.email, user.password
    stale_read()

    res = client.post("/auth/login", json={"email": email, "password": password})

    assert res.status_code == 200, res.get_json()
    assert res.get_json()["token_type"] == "Bearer"


def test_a_handler_storing_its_output_after_reading_is_not_refused(owner, make_project, private_redis, stale_read):
    from app import dbsetup
    from app.auth.models import User
    from app.extensions import db
    from app.projects import jobs
    from app.projects.models import Project, ProjectFile
    from app.projects.runner import JobContext

    project_id = make_project()["id"]
    db.session.commit()  # the setup itself must not meet the subject: it takes the write lock at BEGIN, as requests do
    with dbsetup.immediate():
        project = db.session.get(Project, project_id)
        job = jobs.start_job(name="Export", user=db.session.get(User, owner["id"]), project=project)
        db.session.commit()  # enqueueing read the job again: that transaction holds the lock too
    ctx = JobContext(job)
    stale_read()  # the handler read the records; meanwhile the web process wrote

    ctx.store_file("records.csv", "text/csv", b"tag\nTT-1\n")

    stored = db.session.scalars(select(ProjectFile).where(ProjectFile.job_id == ctx.job_id)).all()
    assert [(f.purpose, f.name, f.content) for f in stored] == [("output", "records.csv", b"tag\nTT-1\n")]


def test_starting_a_job_outside_a_request_after_a_stale_read_is_not_refused(owner, make_project, private_redis,
                                                                           stale_read):
    """As a CLI command or a handler starting a follow-up job would: read the project and user, then start."""
    from app.auth.models import User
    from app.extensions import db
    from app.projects import jobs
    from app.projects.models import Job, Project

    project_id = make_project()["id"]
    db.session.commit()
    project, user = db.session.get(Project, project_id), db.session.get(User, owner["id"])
    stale_read()

    job_id = jobs.start_job(name="Export", user=user, project=project).id

    db.session.remove()
    assert db.session.get(Job, job_id).status == "Queued"
