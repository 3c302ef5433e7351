"""Read and write the tabular files (CSV, XLSX) that records are imported from and exported to.

Reading is lazy: ``read_rows`` parses only the header, iterating the returned ``TableReader``
yields one ``Row`` at a time. Cell text is trimmed; empty cells are left out of ``Row.values``;
blank rows are skipped. A row with values beyond the header's columns keeps the values that
fit and carries a message in ``Row.error`` (the caller decides whether that rejects the row).
XLSX: the first worksheet; formulas give their cached result; date cells give ISO text
("2024-05-02", or "2024-05-01T13:30:00" when there is a time of day).

Number coercion (``coerce_value``, applied to text cells of both formats by default): a text
becomes a number only when writing that number back gives exactly the same text, so nothing
is lost. "12" -> 12, "-3" -> -3, "1.5" -> 1.5, "100.0" -> 100.0. Stay strings: "007", "1.50",
"1e5", "+3", ".5", "1,5" (decimal comma), "true"/"false", and integers over 15 digits (they
would lose precision in JavaScript and Excel).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass
from typing import Iterable, Iterator

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

MAX_XLSX_UNCOMPRESSED = 200 * 1024 * 1024
MAX_XLSX_MEMBERS = 10_000
DELIMITERS = ",;\t"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_CSV_EXTENSIONS = {"csv", "tsv", "txt"}
_XLSX_EXTENSIONS = {"xlsx", "xlsm"}
_CSV_MIMES = {"text/csv", "application/csv", "text/plain", "text/tab-separated-values"}

_NUMBER_START = frozenset("-0123456789")
_INT_RE = re.compile(r"0|-?[1-9][0-9]{0,14}")
_FLOAT_RE = re.compile(r"-?[0-9]+\.[0-9]+")
_QUOTED_RE = re.compile(r'"[^"]*"')


class TabularError(ValueError):
    """The file cannot be read as a table. The message is meant for the user."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int                      # 1-based line (CSV) or row (XLSX) number; the header is line 1
    values: dict[str, object]
    error: str | None = None       # set when the row has more values than the header has columns


def coerce_value(value: object) -> object:
    """Turn a canonical integer/decimal text into a number; anything else is returned unchanged."""
    if not isinstance(value, str) or not value or value[0] not in _NUMBER_START:
        return value
    if _INT_RE.fullmatch(value):
        return int(value)
    if _FLOAT_RE.fullmatch(value):
        number = float(value)
        if repr(number) == value:
            return number
    return value


class TableReader:
    """Header columns, an approximate row count (for progress only) and lazy iteration of rows."""

    def __init__(self, columns: list[str], total_rows: int | None, rows, close=None):
        self.columns = columns
        self.total_rows = total_rows
        self._rows = rows              # callable returning a fresh iterator of Row
        self._close = close

    def __iter__(self) -> Iterator[Row]:
        return self._rows()

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_rows(data: bytes, filename: str, content_type: str | None = None, *,
              coerce: bool = True) -> TableReader:
    """Open a CSV or XLSX upload. Raises TabularError for unreadable files or bad headers."""
    if not data:
        raise TabularError("The file is empty.")
    kind = _detect_format(data, filename or "", content_type)
    if kind == "xlsx":
        return _read_xlsx(data, coerce)
    return _read_csv(data, coerce)


def _detect_format(data: bytes, filename: str, content_type: str | None) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    mime = (content_type or "").split(";")[0].strip().lower()
    is_zip = data.startswith(b"PK\x03\x04")
    if ext == "xls":
        raise TabularError("Old .xls files are not supported; save the sheet as .xlsx or .csv.")
    if ext in _XLSX_EXTENSIONS or (ext not in _CSV_EXTENSIONS and mime == XLSX_MIME):
        if not is_zip:
            raise TabularError("The file is not a valid XLSX workbook.")
        return "xlsx"
    if ext in _CSV_EXTENSIONS or mime in _CSV_MIMES:
        if is_zip:
            raise TabularError("The file looks like a workbook, not CSV text; name it .xlsx.")
        return "csv"
    if is_zip:
        return "xlsx"
    head = data[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" not in head:
        return "csv"
    raise TabularError("Unknown file format; upload a .csv or .xlsx file.")


def _header(cells) -> list[str]:
    names = ["" if c is None else str(c).strip() for c in cells]
    while names and not names[-1]:          # spreadsheets often carry empty trailing columns
        names.pop()
    seen = set()
    for number, name in enumerate(names, start=1):
        if not name:
            raise TabularError(f"Column {number} has an empty header.")
        if name in seen:
            raise TabularError(f"Duplicate column header '{name}'.")
        seen.add(name)
    return names


# --- CSV -------------------------------------------------------------------------------------

def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise TabularError("The file has a UTF-16 marker but is not valid UTF-16.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")    # cp1252 leaves five bytes undefined; latin-1 takes all


def _sniff_delimiter(text: str) -> str:
    for line in io.StringIO(text, newline=""):
        if line.strip():
            line = _QUOTED_RE.sub("", line)    # delimiters inside quoted names do not count
            best = max(DELIMITERS, key=line.count)   # ties go to the earlier, i.e. comma
            return best if line.count(best) else ","
    raise TabularError("The file has no header row.")


def _csv_reader(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) per CSV record, blank ones included."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            yield start, cells
    except csv.Error as exc:
        raise TabularError(f"Line {last + 1}: {exc}.") from None


def _extra_error(line: int, width: int) -> str:
    return f"line {line}: more values than the {width} header columns"


def _read_csv(data: bytes, coerce: bool) -> TableReader:
    text = _decode(data)
    delimiter = _sniff_delimiter(text)
    for header_line, cells in _csv_reader(text, delimiter):
        if any(c.strip() for c in cells):
            break
    else:
        raise TabularError("The file has no header row.")
    columns = _header(cells)
    width = len(columns)
    newline = "\n" if "\n" in text else "\r"
    total = max(text.count(newline) - header_line + (0 if text.endswith(newline) else 1), 0)

    def rows() -> Iterator[Row]:
        for line, cells in _csv_reader(text, delimiter):
            if line <= header_line:
                continue
            values = {}
            for name, cell in zip(columns, cells):
                if cell and (cell := cell.strip()):
                    # testing the first character here saves a call for most text cells
                    if coerce and cell[0] in _NUMBER_START:
                        cell = coerce_value(cell)
                    values[name] = cell
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                yield Row(line, values, _extra_error(line, width))
            elif values:
                yield Row(line, values)

    return TableReader(columns, total, rows)


# --- XLSX ------------------------------------------------------------------------------------

def _xlsx_value(value: object, coerce: bool) -> object:
    if isinstance(value, str):
        value = value.strip()
        return (coerce_value(value) if coerce else value) if value else None
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return int(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        if value.time() == dt.time() and value.tzinfo is None:
            return value.date().isoformat()    # date cells arrive as midnight datetimes
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int)):
        return value
    return str(value)


def _has_extra(cells: tuple, width: int) -> bool:
    extra = cells[width:]
    if extra.count(None) == len(extra):    # the usual case, checked at C speed
        return False
    return any(_xlsx_value(c, False) is not None for c in extra)


def _read_xlsx(data: bytes, coerce: bool) -> TableReader:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise TabularError("The file is not a valid XLSX workbook.") from None
    # zipfile never inflates a member past its declared size, so the declared sizes are a bound
    if len(infos) > MAX_XLSX_MEMBERS or sum(i.file_size for i in infos) > MAX_XLSX_UNCOMPRESSED:
        raise TabularError("The workbook is too large when uncompressed; refusing to read it.")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise TabularError("The file is not a valid XLSX workbook.") from None
    if not book.worksheets:
        book.close()
        raise TabularError("The workbook has no worksheet.")
    sheet = book.worksheets[0]
    max_row = sheet.max_row
    # a declared dimension (say A1:XFD1048576) would pad every row, blank ones included, to
    # its full width; without it rows are only as wide as their own cells
    sheet.reset_dimensions()

    def lines() -> Iterator[tuple[int, tuple]]:
        try:
            yield from enumerate(sheet.iter_rows(values_only=True), start=1)
        except Exception:
            raise TabularError("The workbook could not be read; it may be damaged.") from None

    try:
        for header_line, cells in lines():
            if any(_xlsx_value(c, False) is not None for c in cells):
                break
        else:
            raise TabularError("The worksheet has no header row.")
        columns = _header(_xlsx_value(c, False) for c in cells)
    except TabularError:
        book.close()
        raise
    width = len(columns)
    total = max(max_row - header_line, 0) if max_row else None

    def rows() -> Iterator[Row]:
        for line, cells in lines():
            if line <= header_line:
                continue
            values = {}
            for name, cell in zip(columns, cells):
                if cell is not None and (cell := _xlsx_value(cell, coerce)) is not None:
                    values[name] = cell
            if len(cells) > width and _has_extra(cells, width):
                yield Row(line, values, _extra_error(line, width))
            elif values:
                yield Row(line, values)

    return TableReader(columns, total, rows, close=book.close)


# --- Writing ---------------------------------------------------------------------------------

def columns_of(records: Iterable[dict], key_field: str = "tag") -> list[str]:
    """Key field first, then every other field in first-seen order. Consumes ``records``."""
    seen = {key_field: None}
    for record in records:
        for name in record:
            if name not in seen:
                seen[name] = None
    return list(seen)


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write_csv(records: Iterable[dict], columns: list[str], *, bom: bool = True) -> bytes:
    """UTF-8 CSV, comma separated. The BOM (default) makes Excel read accents and units right."""
    buf = io.StringIO()
    if bom:
        buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_csv_text(record.get(c)) for c in columns])
    return buf.getvalue().encode("utf-8")


def _xlsx_cell(sheet, value: object):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**15 else str(value)   # Excel keeps only 15 digits
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    text = ILLEGAL_CHARACTERS_RE.sub("", value if isinstance(value, str) else _csv_text(value))
    if text.startswith("="):
        cell = WriteOnlyCell(sheet, value=text)
        cell.data_type = "s"        # a text, never a formula
        return cell
    return text


def write_xlsx(records: Iterable[dict], columns: list[str]) -> bytes:
    """One-sheet workbook written in openpyxl's streaming (write-only) mode."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Records")
    sheet.append([_xlsx_cell(sheet, c) for c in columns])
    for record in records:
        sheet.append([_xlsx_cell(sheet, record.get(c)) for c in columns])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
