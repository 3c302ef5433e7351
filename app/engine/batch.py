"""Several tables' new rows in one PostgreSQL statement: INSERT CTEs on one main statement.

PostgreSQL runs every data-modifying CTE of a statement, and checks foreign keys at its end, so
an instance, its element instances, jobs and history rows (or a completed instance's update and
its new rows) cost one round trip. Statements are built once per shape (tables, row counts,
columns) with named bind parameters, compiled once per shape and run on the driver's cursor
(driver.py); `INSERT … SELECT … UNION ALL SELECT …` rather than a multi-row VALUES keeps one
statement per shape.
"""
from sqlalchemy import bindparam, insert, select, union_all

from app.engine import driver

_STATEMENTS: dict[tuple, object] = {}
MAX_SHAPES = 200


def _insert(table, columns: list[str], count: int, prefix: str):
    values = [[bindparam(f"{prefix}_{i}_{c}", type_=table.c[c].type) for c in columns] for i in range(count)]
    if count == 1:
        return insert(table).values(dict(zip(columns, values[0])))
    return insert(table).from_select(columns, union_all(*(select(*row) for row in values)))


def write(conn, batches: list[tuple], main=None, main_name: str = "", params: dict | None = None) -> None:
    """Write [(table, rows)]; with `main` (a statement, named main_name for the cache, taking
    `params`) the inserts ride on it as CTEs, else the first batch's INSERT is the main statement."""
    batches = [(table, rows) for table, rows in batches if rows]
    if main is None and not batches:
        return
    shape = (main_name, *((table.name, len(rows), tuple(rows[0])) for table, rows in batches))
    stmt = _STATEMENTS.get(shape)
    if stmt is None:
        parts = [_insert(table, list(rows[0]), len(rows), f"r{t}") for t, (table, rows) in enumerate(batches)]
        stmt = main if main is not None else parts.pop(0)
        for i, part in enumerate(parts):
            stmt = stmt.add_cte(part.cte(f"new_{i}"))
        stmt = driver.Statement(stmt)
        if len(_STATEMENTS) >= MAX_SHAPES:  # processes of many shapes: keep memory bounded
            _STATEMENTS.clear()
        _STATEMENTS[shape] = stmt
    values = dict(params or {})
    for t, (_, rows) in enumerate(batches):
        for i, row in enumerate(rows):
            for column, value in row.items():
                values[f"r{t}_{i}_{column}"] = value
    stmt.execute(conn, values)
