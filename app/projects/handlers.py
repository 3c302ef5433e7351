"""The four built-in job types, registered exactly as a deployment would register its own."""
from app.extensions import db
from app.projects import content, registry, staging, tabular
from app.projects.models import Project
from app.projects.rules import Validator
from app.projects.scenarios import ScenarioRunner

CHUNK = 2000         # good rows staged per transaction (small enough to notice a cancel quickly)
WRITE_SHARE = 95     # progress when every row is staged; the merge takes the rest
MAX_ERROR_DETAILS = 100
MAX_KEY_LENGTH = 255


def _project(ctx) -> Project:
    project = db.session.get(Project, ctx.project_id)
    if project is None:
        raise LookupError("the project no longer exists")
    return project


# ---- Import ---------------------------------------------------------------------------------------

def run_import(ctx):
    """Parse the upload and stage good rows chunk by chunk; records change only in the completing transaction."""
    project = _project(ctx)
    key_field = ctx.params.get("keyField") or project.key_field
    upload = ctx.upload()
    if upload is None:
        raise LookupError("the uploaded file is missing")
    data, name, content_type = upload.content, upload.name, upload.content_type
    db.session.rollback()  # hold no transaction while parsing
    chunk: dict[str, dict] = {}
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
                chunk[str(row.values[key_field])] = row.values
            if len(chunk) >= CHUNK:
                _stage(ctx, chunk, WRITE_SHARE * processed / total)
                chunk = {}
            elif processed % CHUNK == 0:  # a file of mostly bad rows still notices a cancel
                ctx.check_cancelled()
                ctx.progress(WRITE_SHARE * processed / total)
    _stage(ctx, chunk, WRITE_SHARE)
    ctx.progress(WRITE_SHARE, force=True)
    summary = {"recordsProcessed": processed, "errors": error_count, "errorDetails": errors,
               "keyField": key_field}
    project_id, job_id = project.id, ctx.job_id
    return lambda: {**summary, **staging.merge(project_id=project_id, job_id=job_id, columns=columns)}


def _stage(ctx, chunk: dict[str, dict], percent: float) -> None:
    staging.stage(ctx.job_id, chunk)
    ctx.check_cancelled()
    ctx.progress(percent)


def _row_problem(row, key_field: str) -> tuple[str | None, str] | None:
    if row.error:
        return None, row.error
    key = row.values.get(key_field)
    if key is None or not str(key).strip():
        return key_field, f"the key field '{key_field}' is empty"
    if len(str(key)) > MAX_KEY_LENGTH:
        return key_field, f"the key is longer than {MAX_KEY_LENGTH} characters"
    return None


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
