"""The four built-in job types, registered exactly as a deployment would register its own."""
from sqlalchemy import insert, select, update

from app import clock
from app.extensions import db
from app.projects import content, registry, tabular
from app.projects.models import Project, Record
from app.projects.rules import Validator
from app.projects.scenarios import ScenarioRunner

CHUNK = 2000
MAX_ERROR_DETAILS = 100
MAX_KEY_LENGTH = 255


def _project(ctx) -> Project:
    project = db.session.get(Project, ctx.project_id)
    if project is None:
        raise LookupError("the project no longer exists")
    return project


# ---- Import ---------------------------------------------------------------------------------------

def run_import(ctx):
    """Read the upload, collect good rows by key; records change only in the completing transaction."""
    project = _project(ctx)
    key_field = ctx.params.get("keyField") or project.key_field
    upload = ctx.upload()
    if upload is None:
        raise LookupError("the uploaded file is missing")
    data, name, content_type = upload.content, upload.name, upload.content_type
    db.session.rollback()  # hold no transaction while parsing
    rows: dict[str, dict] = {}
    errors: list[dict] = []
    error_count = processed = 0
    with tabular.read_rows(data, name, content_type) as reader:
        if key_field not in reader.columns:
            raise ValueError(f"The file has no '{key_field}' column (columns: {', '.join(reader.columns)})")
        total = max(reader.total_rows or 0, 1)
        columns = list(reader.columns)
        for row in reader:
            processed += 1
            problem = _row_problem(row, key_field)
            if problem is not None:
                error_count += 1
                if len(errors) < MAX_ERROR_DETAILS:
                    errors.append({"line": row.line, "field": problem[0], "message": problem[1]})
            else:
                rows[str(row.values[key_field])] = row.values
            if processed % CHUNK == 0:
                ctx.check_cancelled()
                ctx.progress(90 * processed / total)
    ctx.check_cancelled()
    ctx.progress(90)
    summary = {"recordsProcessed": processed, "errors": error_count, "errorDetails": errors,
               "keyField": key_field}
    return lambda: {**summary, **write_records(project.id, rows, columns)}


def _row_problem(row, key_field: str) -> tuple[str | None, str] | None:
    if row.error:
        return None, row.error
    key = row.values.get(key_field)
    if key is None or not str(key).strip():
        return key_field, f"the key field '{key_field}' is empty"
    if len(str(key)) > MAX_KEY_LENGTH:
        return key_field, f"the key is longer than {MAX_KEY_LENGTH} characters"
    return None


def write_records(project_id: str, rows: dict[str, dict], columns: list[str]) -> dict:
    """Insert new keys and update changed ones, in chunks, inside the caller's transaction."""
    project = db.session.scalar(select(Project).where(Project.id == project_id).with_for_update())  # one at a time
    known = list(project.columns or [])
    project.columns = known + [c for c in columns if c not in known]
    existing = {key: (rid, data) for key, rid, data in db.session.execute(
        select(Record.key, Record.id, Record.data).where(Record.project_id == project_id))}
    now = clock.utcnow()
    inserts, updates, unchanged = [], [], 0
    for key, values in rows.items():
        if key not in existing:
            inserts.append({"project_id": project_id, "key": key, "data": values, "created_at": now,
                            "updated_at": now})
        elif existing[key][1] != values:
            updates.append({"id": existing[key][0], "data": values, "updated_at": now})
        else:
            unchanged += 1
    for start in range(0, len(inserts), 5000):
        db.session.execute(insert(Record), inserts[start:start + 5000])
    for start in range(0, len(updates), 5000):
        db.session.execute(update(Record), updates[start:start + 5000])
    return {"recordsCreated": len(inserts), "recordsUpdated": len(updates), "recordsUnchanged": unchanged}


# ---- Export ---------------------------------------------------------------------------------------

FORMATS = {"csv": "text/csv; charset=utf-8", "xlsx": tabular.XLSX_MIME}


def run_export(ctx):
    project = _project(ctx)
    fmt = ctx.params.get("format", "csv")
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    total = max(content.count_records(project.id), 1)
    name, key_field = project.name, project.key_field
    records = []
    for page in content.iter_record_pages(project.id):
        records.extend(data for _, data in page)
        ctx.check_cancelled()
        ctx.progress(70 * len(records) / total)
    columns = _ordered(project.columns or [], tabular.columns_of(records, key_field))
    ctx.check_cancelled()
    body = tabular.write_csv(records, columns) if fmt == "csv" else tabular.write_xlsx(records, columns)
    ctx.check_cancelled()
    filename = f"{_safe(name)}-records.{fmt}"
    ctx.store_file(filename, FORMATS[fmt], body)
    return {"recordsExported": len(records), "format": fmt, "fileName": filename, "size": len(body),
            "columns": columns}


def _ordered(known: list[str], found: list[str]) -> list[str]:
    """The key first, then the imported column order, then fields only records know of."""
    first = found[:1]
    return first + [c for c in known if c in found and c not in first] + [c for c in found if c not in known
                                                                          and c not in first]


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
    return cleaned[:80] or "project"


# ---- Validation and TestRun -----------------------------------------------------------------------

def _stream(ctx, project: Project, feed) -> None:
    total = max(content.count_records(project.id), 1)
    done = 0
    for page in content.iter_record_pages(project.id):
        for key, data in page:
            feed(key, data)
        done += len(page)
        ctx.check_cancelled()
        ctx.progress(99 * done / total)


def run_validation(ctx):
    project = _project(ctx)
    validator = Validator(content.rule_definitions(project.id))
    _stream(ctx, project, validator.feed)
    return validator.finish()


def run_test_run(ctx):
    project = _project(ctx)
    scenarios = content.scenario_definitions(project.id, ctx.params.get("scenario_ids"))
    runner = ScenarioRunner(scenarios, key_field=project.key_field)
    _stream(ctx, project, lambda key, data: runner.feed(data))
    return runner.finish()


registry.register("Import", queue="import", run=run_import,
                  description="Create or update records by key from a CSV or XLSX upload")
registry.register("Export", queue="export", run=run_export, description="Write all records to a CSV or XLSX file")
registry.register("Validation", queue="validation", run=run_validation,
                  description="Check every record against the project's validation rules")
registry.register("TestRun", queue="tests", run=run_test_run,
                  description="Run the project's test scenarios over its records")
