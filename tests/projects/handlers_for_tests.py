"""Job types a deployment might add, loaded through JOB_HANDLER_MODULES by the tests' web app and workers."""
from sqlalchemy import func, select

from app.extensions import db
from app.projects import handlers, registry
from app.projects.models import ImportRow

INTERVALS = (1, 1)  # short waits between RQ retries, so the tests stay quick


def flaky_twice(ctx):
    if ctx.attempt <= 2:
        raise registry.Transient(f"the gauge server is busy (attempt {ctx.attempt})")
    ctx.progress(50)
    return {"succeededOnAttempt": ctx.attempt}


def always_busy(ctx):
    raise registry.Transient(f"the gauge server is still busy (attempt {ctx.attempt})")


def broken(ctx):
    raise RuntimeError("the calibration table is corrupt")


def import_then_fail(ctx):
    handlers.run_import(ctx)  # every good row staged; the merge never runs
    staged = db.session.scalar(select(func.count()).select_from(ImportRow).where(ImportRow.job_id == ctx.job_id))
    raise RuntimeError(f"failed after staging {staged} rows")


registry.register("TestFlakyTwice", queue="default", run=flaky_twice, retry_intervals=INTERVALS,
                  description="Fails transiently twice, then succeeds")
registry.register("TestAlwaysBusy", queue="default", run=always_busy, retry_intervals=INTERVALS,
                  description="Fails transiently every time")
registry.register("TestBroken", queue="default", run=broken, retry_intervals=INTERVALS,
                  description="Fails with a plain exception")
registry.register("TestImportThenFail", queue="import", run=import_then_fail, retry_intervals=INTERVALS,
                  description="Stages an import's rows, then fails")
