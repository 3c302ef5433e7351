"""An import's good rows, staged per job in short transactions, then merged into the records in one.

Staging lets the write phase report progress and notice a cancel as it goes, while the records still
change only in the transaction that marks the import Completed: a failed, cancelled or killed import
leaves them as they were, and its staged rows are discarded when the job ends (jobs.finish_locked).

"Unchanged" compares JSON values: JSONB equality on PostgreSQL; on SQLite the serialized text, which
compares like the values because staged rows are written with sorted keys and records are copied
from staged rows verbatim.
"""
from sqlalchemy import delete, exists, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import clock
from app.dbsetup import immediate
from app.extensions import db
from app.projects.models import ImportRow, Project, Record
from app.types import UTCDateTime


def stage(job_id: str, rows: dict[str, dict]) -> None:
    """Write one chunk in its own transaction; a key seen in an earlier chunk takes the later row."""
    if not rows:
        return
    dialect_insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(ImportRow)
    statement = statement.on_conflict_do_update(index_elements=[ImportRow.job_id, ImportRow.key],
                                                set_={"data": statement.excluded.data})
    values = [{"job_id": job_id, "key": key, "data": dict(sorted(data.items()))} for key, data in rows.items()]
    db.session.rollback()
    with immediate():
        db.session.execute(statement, values)
    db.session.commit()


def discard(job_id: str) -> None:
    """Delete a job's staged rows inside the caller's transaction."""
    db.session.execute(delete(ImportRow).where(ImportRow.job_id == job_id))


def merge(*, project_id: str, job_id: str, columns: list[str]) -> dict:
    """Inside the caller's (completing) transaction: update changed keys, insert new ones, drop staging."""
    project = db.session.scalar(select(Project).where(Project.id == project_id).with_for_update())  # one at a time
    if project is None:
        raise LookupError("the project no longer exists")
    known = list(project.columns or [])
    project.columns = known + [c for c in columns if c not in known]
    staged = select(ImportRow).where(ImportRow.job_id == job_id).subquery()
    records = Record.__table__
    total = db.session.scalar(select(func.count()).select_from(staged))
    # The project's row lock keeps other imports out, so these counts hold until the commit.
    matched = db.session.scalar(select(func.count()).select_from(staged).join(
        records, (records.c.project_id == project_id) & (records.c.key == staged.c.key)))
    now = clock.utcnow()
    updated = db.session.execute(
        update(records)
        .where(records.c.project_id == project_id, records.c.key == staged.c.key, records.c.data != staged.c.data)
        .values(data=staged.c.data, updated_at=now)).rowcount
    stamp = literal(now, UTCDateTime())
    db.session.execute(
        insert(records).from_select(
            ["project_id", "key", "data", "created_at", "updated_at"],
            select(literal(project_id), staged.c.key, staged.c.data, stamp, stamp)
            .where(~exists().where(records.c.project_id == project_id, records.c.key == staged.c.key))))
    discard(job_id)
    return {"recordsCreated": total - matched, "recordsUpdated": updated, "recordsUnchanged": matched - updated}
