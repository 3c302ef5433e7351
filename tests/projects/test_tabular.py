import datetime as dt
import io
import time
import zipfile

import openpyxl
import pytest

from app.projects.tabular import (MAX_XLSX_UNCOMPRESSED, Row, TabularError, coerce_value,
                                  columns_of, read_rows, write_csv, write_xlsx)


def xlsx_bytes(rows, sheet_title="Tags"):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = sheet_title
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def values(reader):
    return [row.values for row in reader]


# --- coercion --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("12", 12), ("0", 0), ("-3", -3), ("1.5", 1.5), ("-0.25", -0.25), ("100.0", 100.0),
    ("123456789012345", 123456789012345),
    ("007", "007"), ("1.50", "1.50"), ("1e5", "1e5"), ("+3", "+3"), (".5", ".5"),
    ("1,5", "1,5"), ("-0", "-0"), ("true", "true"), ("false", "false"), ("TI-100", "TI-100"), ("-", "-"),
    ("1234567890123456", "1234567890123456"), ("12 ", "12 "), ("١٢", "١٢"), ("", ""),
])
def test_coerce_value(text, expected):
    result = coerce_value(text)
    assert result == expected and type(result) is type(expected)


def test_coerce_value_leaves_non_strings_alone():
    assert coerce_value(5) == 5 and coerce_value(None) is None and coerce_value(1.5) == 1.5


# --- CSV reading -----------------------------------------------------------------------------

def test_csv_basic_rows_line_numbers_and_blank_lines():
    data = b"tag,description,area,range_high\nTI-100,Temp,300,150.5\n\n,,,\nPI-7,,300,\n"
    reader = read_rows(data, "tags.csv")
    assert reader.columns == ["tag", "description", "area", "range_high"]
    assert reader.total_rows == 4
    rows = list(reader)
    assert rows == [
        Row(2, {"tag": "TI-100", "description": "Temp", "area": 300, "range_high": 150.5}),
        Row(5, {"tag": "PI-7", "area": 300}),
    ]
    assert list(reader) == rows            # iterating again starts over


def test_csv_semicolon_bom_crlf_and_quoted_fields():
    data = '\ufefftag;description;unit\r\n"TI-1";"Temp; inlet";°C\r\nTI-2;"two\r\nlines";m³/h\r\n'
    reader = read_rows(data.encode("utf-8"), "x.csv")
    assert reader.columns == ["tag", "description", "unit"]
    rows = list(reader)
    assert rows[0].values == {"tag": "TI-1", "description": "Temp; inlet", "unit": "°C"}
    assert rows[1] == Row(3, {"tag": "TI-2", "description": "two\r\nlines", "unit": "m³/h"})


def test_csv_tab_delimited_and_header_comma_inside_quotes():
    reader = read_rows(b'"a,b"\tc\n1\t2\n', "x.tsv")
    assert reader.columns == ["a,b", "c"]
    assert values(reader) == [{"a,b": 1, "c": 2}]


def test_csv_single_column():
    assert values(read_rows(b"tag\nA\nB\n", "x.csv")) == [{"tag": "A"}, {"tag": "B"}]


def test_csv_cp1252_fallback_and_utf16():
    data = "tag;unit\nTI-1;°C\nTI-2;€\n".encode("cp1252")
    assert values(read_rows(data, "x.csv")) == [{"tag": "TI-1", "unit": "°C"},
                                                 {"tag": "TI-2", "unit": "€"}]
    data = "tag\tunit\nTI-1\t°C\n".encode("utf-16")
    assert values(read_rows(data, "x.txt")) == [{"tag": "TI-1", "unit": "°C"}]


def test_csv_header_trimmed_and_trailing_empty_headers_dropped():
    reader = read_rows(b" tag , desc ,,\nA,x,,\n", "x.csv")
    assert reader.columns == ["tag", "desc"]
    assert list(reader) == [Row(2, {"tag": "A", "desc": "x"})]


@pytest.mark.parametrize("data, message", [
    (b"tag,desc,tag\n1,2,3\n", "Duplicate column header 'tag'"),
    (b"tag, ,desc\n1,2,3\n", "Column 2 has an empty header"),
    (b"\n\n  \n", "no header row"),
    (b"", "empty"),
])
def test_csv_bad_headers(data, message):
    with pytest.raises(TabularError, match=message):
        read_rows(data, "x.csv")


def test_csv_extra_values_flagged_on_the_row():
    rows = list(read_rows(b"tag,desc\nA,x,surplus\nB,y,\nC\n", "x.csv"))
    assert rows[0].values == {"tag": "A", "desc": "x"}
    assert rows[0].error == "line 2: more values than the 2 header columns"
    assert rows[1].error is None and rows[2] == Row(4, {"tag": "C"})


def test_csv_without_coercion_keeps_strings():
    assert values(read_rows(b"tag,n\nA,12\n", "x.csv", coerce=False)) == [{"tag": "A", "n": "12"}]


def test_csv_parse_error_names_the_line():
    import csv
    old = csv.field_size_limit(10)
    try:
        with pytest.raises(TabularError, match="Line 3"):
            list(read_rows(b"tag\nA\n" + b"x" * 50 + b"\n", "x.csv"))
    finally:
        csv.field_size_limit(old)


# --- format detection ------------------------------------------------------------------------

def test_format_detection():
    book = xlsx_bytes([["tag"], ["A"]])
    assert values(read_rows(book, "upload", None)) == [{"tag": "A"}]          # sniffed zip
    assert values(read_rows(book, "upload.bin", "application/octet-stream")) == [{"tag": "A"}]
    assert values(read_rows(b"tag\nA\n", "upload", "text/csv")) == [{"tag": "A"}]
    assert values(read_rows(b"tag\nA\n", "noext")) == [{"tag": "A"}]          # sniffed text
    with pytest.raises(TabularError, match="Unknown file format"):
        read_rows(b"\x00\x01\x02binary", "blob.bin")
    with pytest.raises(TabularError, match="not a valid XLSX"):
        read_rows(b"tag\nA\n", "x.xlsx")
    with pytest.raises(TabularError, match="not CSV"):
        read_rows(book, "x.csv")
    with pytest.raises(TabularError, match=".xls files"):
        read_rows(b"\xd0\xcf\x11\xe0", "old.xls")
    with pytest.raises(TabularError, match="not a valid XLSX"):
        read_rows(b"PK\x03\x04garbage", "x.xlsx")


# --- XLSX reading ----------------------------------------------------------------------------

def test_xlsx_values_are_converted():
    book = xlsx_bytes([
        [" tag ", "range_high", "count", "when", "day", "flag", "note"],
        ["TI-1", 150.5, 3.0, dt.datetime(2024, 5, 1, 13, 30), dt.datetime(2024, 5, 2), True, "  x "],
        [None, None, None, None, None, None, None],
        ["TI-2", None, 7, None, None, False, "007"],
        ["TI-3", None, None, None, None, None, "42"],
    ])
    reader = read_rows(book, "tags.xlsx")
    assert reader.columns == ["tag", "range_high", "count", "when", "day", "flag", "note"]
    assert reader.total_rows == 4
    rows = list(reader)
    assert rows[0] == Row(2, {"tag": "TI-1", "range_high": 150.5, "count": 3,
                              "when": "2024-05-01T13:30:00", "day": "2024-05-02", "flag": True,
                              "note": "x"})
    assert type(rows[0].values["count"]) is int
    assert rows[1] == Row(4, {"tag": "TI-2", "count": 7, "flag": False, "note": "007"})
    assert rows[2] == Row(5, {"tag": "TI-3", "note": 42})
    reader.close()


def test_xlsx_header_errors_and_extra_cells():
    with pytest.raises(TabularError, match="Duplicate column header 'a'"):
        read_rows(xlsx_bytes([["a", "b", "a"]]), "x.xlsx")
    with pytest.raises(TabularError, match="Column 2 has an empty header"):
        read_rows(xlsx_bytes([["a", None, "c"]]), "x.xlsx")
    with pytest.raises(TabularError, match="no header row"):
        read_rows(xlsx_bytes([]), "x.xlsx")
    rows = list(read_rows(xlsx_bytes([["a", "b"], [1, 2, 3]]), "x.xlsx"))
    assert rows[0].values == {"a": 1, "b": 2} and "more values" in rows[0].error


def test_xlsx_reads_the_first_sheet():
    book = openpyxl.Workbook()
    book.active.append(["tag"])
    book.active.append(["first"])
    other = book.create_sheet("Other")
    other.append(["x"])
    buf = io.BytesIO()
    book.save(buf)
    with read_rows(buf.getvalue(), "x.xlsx") as reader:
        assert values(reader) == [{"tag": "first"}]


def test_xlsx_huge_declared_dimension_does_not_pad_rows():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["tag", "x"])
    sheet.append(["A", 1])
    sheet.cell(row=200_000, column=16_384).value = None     # dimension becomes A1:XFD200000
    sheet.cell(row=200_000, column=1).value = "Z"
    buf = io.BytesIO()
    book.save(buf)
    started = time.perf_counter()
    reader = read_rows(buf.getvalue(), "sparse.xlsx")
    assert list(reader) == [Row(2, {"tag": "A", "x": 1}), Row(200_000, {"tag": "Z"})]
    assert reader.total_rows == 199_999
    assert time.perf_counter() - started < 5


def test_xlsx_zip_bomb_is_refused_before_parsing():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        chunk = b"\0" * (1024 * 1024)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            for _ in range(MAX_XLSX_UNCOMPRESSED // len(chunk) + 1):
                member.write(chunk)
    data = buf.getvalue()
    assert len(data) < 1024 * 1024            # tiny on disk, over the cap when inflated
    with pytest.raises(TabularError, match="too large"):
        read_rows(data, "bomb.xlsx")


# --- writing and round trips -----------------------------------------------------------------

RECORDS = [
    {"tag": "TI-100", "description": "Temp, inlet", "area": 300, "range_high": 150.5,
     "unit": "°C"},
    {"description": 'quote " and\nnewline', "tag": "TI-101", "area": 300, "code": "007",
     "formula": "=SUM(A1:A2)", "range_low": -20, "ratio": 100.0},
    {"tag": "PI-7", "unit": "m³/h", "note": "x" * 500},
]


def test_columns_of_puts_the_key_first_then_first_seen_order():
    assert columns_of(RECORDS) == ["tag", "description", "area", "range_high", "unit", "code",
                                   "formula", "range_low", "ratio", "note"]
    assert columns_of([{"a": 1, "id": 2}], key_field="id") == ["id", "a"]
    assert columns_of([]) == ["tag"]


@pytest.mark.parametrize("writer, name", [(write_csv, "out.csv"), (write_xlsx, "out.xlsx")])
def test_round_trip(writer, name):
    columns = columns_of(RECORDS)
    reader = read_rows(writer(RECORDS, columns), name)
    assert reader.columns == columns
    assert values(reader) == RECORDS
    for row, record in zip(reader, RECORDS):
        for field, value in record.items():
            if name.endswith(".xlsx") and isinstance(value, float) and value.is_integer():
                assert type(row.values[field]) is int      # XLSX cannot tell 100.0 from 100
            else:
                assert type(row.values[field]) is type(value), field


def test_write_csv_format():
    data = write_csv([{"tag": "A", "ok": True, "n": None, "d": {"k": 1}}], ["tag", "ok", "n", "d"])
    assert data.startswith(b"\xef\xbb\xbftag,ok,n,d\r\n")
    assert data.endswith(b'A,true,,"{""k"":1}"\r\n')
    assert not write_csv([], ["tag"], bom=False).startswith(b"\xef")


def test_write_xlsx_keeps_formula_like_text_as_text_and_drops_control_chars():
    data = write_xlsx([{"tag": "=1+1", "note": "bell\x07"}], ["tag", "note"])
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet["A2"].value == "=1+1" and sheet["A2"].data_type == "s"
    assert sheet["B2"].value == "bell"


def test_write_xlsx_huge_ints_become_text():
    data = write_xlsx([{"tag": "A", "serial": 12345678901234567890}], ["tag", "serial"])
    assert values(read_rows(data, "x.xlsx")) == [{"tag": "A", "serial": "12345678901234567890"}]


# --- speed -----------------------------------------------------------------------------------

def test_reading_100k_csv_rows_is_fast():
    lines = ["tag,description,type,unit,area,range_low,range_high"]
    lines += [f"TI-{i:06d},Temperature {i},AI,degC,{i % 50},-20,{i % 400}.5" for i in range(100_000)]
    data = "\n".join(lines).encode()
    started = time.perf_counter()
    reader = read_rows(data, "big.csv")
    count = sum(1 for row in reader if row.values["range_low"] == -20)
    elapsed = time.perf_counter() - started
    assert count == 100_000 and reader.total_rows == 100_000
    assert elapsed < 3.0, f"took {elapsed:.2f}s"
