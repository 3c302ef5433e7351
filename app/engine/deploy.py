"""Deploying BPMN models: versions by content, and the parsed definitions cached per process.

A parsed ProcessDefinition cannot be pickled and is never stored: it is parsed again from the
stored XML on first use in a process and cached in memory under (row id, checksum). Rows are
immutable, so the cache never goes stale.
"""
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.engine import bpmn, tx
from app.engine.errors import ProcessNotFound
from app.engine.models import Process
from app.errors import AppError
from app.extensions import db

_cache: dict[int, tuple[str, bpmn.ProcessDefinition]] = {}


def definition(process_pk: int) -> bpmn.ProcessDefinition:
    hit = _cache.get(process_pk)
    if hit is None:
        xml, checksum = db.session.execute(
            select(Process.xml, Process.checksum).where(Process.id == process_pk)).one()
        hit = _cache[process_pk] = (checksum, bpmn.parse(xml.encode("utf-8")))
    return hit[1]


def _refuse(exc: bpmn.BpmnError) -> AppError:
    status = 413 if exc.code == "PAYLOAD_TOO_LARGE" else 400
    return AppError(exc.message, exc.details, code=exc.code, status=status)


def deploy(*, tenant: str, xml: bytes) -> tuple[Process, bool]:
    """Deploy a model; the same bytes give the same version back (created False)."""
    try:
        defn = bpmn.parse(xml)
    except bpmn.BpmnError as exc:
        raise _refuse(exc) from None
    checksum = bpmn.checksum(xml)
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    for _ in range(3):  # two deployers may race for the next version number
        try:
            with tx.write():
                same = db.session.scalar(select(Process).where(
                    Process.tenant == tenant, Process.process_id == defn.process_id, Process.checksum == checksum))
                if same is not None:
                    return same, False
                latest = db.session.scalar(select(func.max(Process.version)).where(
                    Process.tenant == tenant, Process.process_id == defn.process_id)) or 0
                row = Process(tenant=tenant, process_id=defn.process_id, version=latest + 1, name=defn.name,
                              checksum=checksum, xml=text, created_at=clock.utcnow())
                db.session.add(row)
                db.session.flush()
                _cache[row.id] = (checksum, defn)
                tx.instance_event("process.deployed", tenant=tenant, instance_key=None,
                                  process_id=defn.process_id, version=row.version)
            return row, True
        except IntegrityError:
            continue
    raise AppError("Could not deploy the process, try again", code="CONFLICT", status=409)


def list_processes(*, tenant: str) -> list[Process]:
    return list(db.session.scalars(select(Process).where(Process.tenant == tenant)
                                   .order_by(Process.process_id, Process.version.desc())))


def get_versions(*, tenant: str, process_id: str) -> list[Process]:
    rows = list(db.session.scalars(select(Process).where(Process.tenant == tenant, Process.process_id == process_id)
                                   .order_by(Process.version.desc())))
    if not rows:
        raise ProcessNotFound(details={"process_id": process_id})
    return rows


def get(*, tenant: str, process_id: str, version: int | None = None) -> Process:
    query = select(Process).where(Process.tenant == tenant, Process.process_id == process_id)
    query = query.where(Process.version == version) if version else query.order_by(Process.version.desc())
    row = db.session.scalars(query.limit(1)).first()
    if row is None:
        raise ProcessNotFound(details={"process_id": process_id, **({"version": version} if version else {})})
    return row
