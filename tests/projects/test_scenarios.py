import pytest

from app.projects.scenarios import (ScenarioError, ScenarioRunner, describe,
                                    validate_scenario_definition)


def plant():
    records = []
    for i in range(120):
        records.append({"tag": f"TI-{i:03d}", "type": "AI", "area": 300, "range_high": 150})
    for i in range(5):
        records.append({"tag": f"XS-{i}", "type": "DI", "area": "400"})
    records.append({"tag": "TI-900", "type": "AI", "area": 400})          # no range_high
    records.append({"tag": "pi-1", "type": "AI", "area": "300.0", "range_high": "10"})
    return records


def run(scenarios, records=None, **kwargs):
    runner = ScenarioRunner(scenarios, **kwargs)
    for record in plant() if records is None else records:
        runner.feed(record)
    return runner.finish()


def single(assertion, records=None):
    result = run([{"id": 1, "name": "s", "assertions": [assertion]}], records)
    return result["scenarios"][0]["assertions"][0]


def errors_of(scenario):
    with pytest.raises(ScenarioError) as info:
        validate_scenario_definition(scenario)
    return info.value.field_errors


# --- definitions -----------------------------------------------------------------------------

def test_definition_is_normalised():
    scenario = validate_scenario_definition({"id": "s1", "name": " Area 300 ", "assertions": [
        {"kind": "count", "where": {"area": 300}, "value": 120},
        {"kind": "all_have", "field": "range_high", "expect": "fail", "note": "ignored"},
        {"kind": "all_match", "field": "tag", "regex": "TI-\\d+"},
        {"kind": "exists", "where": {"tag": "TI-001"}},
    ]})
    assert scenario == {"id": "s1", "name": "Area 300", "assertions": [
        {"kind": "count", "where": {"area": 300}, "expect": "pass", "op": "eq", "value": 120},
        {"kind": "all_have", "where": {}, "expect": "fail", "field": "range_high"},
        {"kind": "all_match", "where": {}, "expect": "pass", "field": "tag", "regex": "TI-\\d+"},
        {"kind": "exists", "where": {"tag": "TI-001"}, "expect": "pass"},
    ]}


@pytest.mark.parametrize("scenario, expected", [
    (None, {"scenario": "must be an object"}),
    ({"name": "s"}, {"assertions": "must be a non-empty list"}),
    ({"name": " ", "assertions": [{"kind": "exists", "where": {"a": 1}}]}, {"name": "is required"}),
    ({"name": "s", "assertions": [{"kind": "exists", "where": {"a": 1}}] * 101},
     {"assertions": "must have at most 100 entries"}),
    ({"name": "s", "assertions": ["x", {"kind": "sum"}]},
     {"assertions[0]": "must be an object",
      "assertions[1].kind": "must be one of count, all_have, none_have, all_match, exists"}),
    ({"name": "s", "assertions": [{"kind": "count", "op": "approx", "value": -1, "expect": "ok"}]},
     {"assertions[0].op": "must be one of eq, ne, gt, ge, lt, le",
      "assertions[0].value": "must be a whole number, 0 or more",
      "assertions[0].expect": "must be pass or fail"}),
    ({"name": "s", "assertions": [{"kind": "count", "value": True}]},
     {"assertions[0].value": "must be a whole number, 0 or more"}),
    ({"name": "s", "assertions": [{"kind": "all_have"}, {"kind": "none_have", "field": 3}]},
     {"assertions[0].field": "is required", "assertions[1].field": "must be a string"}),
    ({"name": "s", "assertions": [{"kind": "all_match", "field": "tag", "regex": "("}]},
     {"assertions[0].regex": "not a valid regular expression: missing ), unterminated "
                             "subpattern at position 0"}),
    ({"name": "s", "assertions": [{"kind": "exists"}, {"kind": "exists", "where": {}}]},
     {"assertions[0].where": "give at least one field to match",
      "assertions[1].where": "give at least one field to match"}),
    ({"name": "s", "assertions": [{"kind": "count", "value": 1, "where": ["area"]}]},
     {"assertions[0].where": "must be an object of field: value"}),
    ({"name": "s", "assertions": [{"kind": "count", "value": 1, "where": {"a": None, "b": [1]}}]},
     {"assertions[0].where.a": "must be a string, number or boolean",
      "assertions[0].where.b": "must be a string, number or boolean"}),
])
def test_definition_errors(scenario, expected):
    assert errors_of(scenario) == expected


def test_runner_rejects_invalid_scenarios():
    with pytest.raises(ScenarioError):
        ScenarioRunner([{"name": "s", "assertions": []}])


# --- descriptions ----------------------------------------------------------------------------

@pytest.mark.parametrize("assertion, text", [
    ({"kind": "count", "where": {"area": 300}, "value": 120}, "exactly 120 records where area = 300"),
    ({"kind": "count", "op": "ge", "value": 1}, "at least 1 record"),
    ({"kind": "count", "op": "ne", "value": 0, "where": {"type": "AI", "unit": "deg C"}},
     'not exactly 0 records where type = AI and unit = "deg C"'),
    ({"kind": "all_have", "where": {"type": "AI"}, "field": "range_high"},
     "every record where type = AI has range_high"),
    ({"kind": "none_have", "field": "range_low"}, "no record has range_low"),
    ({"kind": "all_match", "field": "tag", "regex": "TI-\\d+"}, "every record has tag matching TI-\\d+"),
    ({"kind": "exists", "where": {"tag": "TI-001", "active": True}},
     "at least one record where tag = TI-001 and active = true"),
])
def test_descriptions(assertion, text):
    assert describe(validate_scenario_definition({"name": "s", "assertions": [assertion]})
                    ["assertions"][0]) == text


# --- running ---------------------------------------------------------------------------------

@pytest.mark.parametrize("op, value, actual", [
    ("eq", 121, "pass"), ("eq", 120, "fail"), ("ne", 120, "pass"), ("gt", 120, "pass"),
    ("ge", 121, "pass"), ("ge", 122, "fail"), ("lt", 121, "fail"), ("le", 121, "pass"),
])
def test_count_ops_with_numeric_where(op, value, actual):
    # area 300, "300.0" and 300 all count: 120 + pi-1
    result = single({"kind": "count", "where": {"area": "300"}, "op": op, "value": value})
    assert result["actual"] == actual and result["detail"] == "found 121"
    assert result["passed"] is (actual == "pass")


def test_count_without_where_counts_everything():
    assert single({"kind": "count", "value": 127})["actual"] == "pass"


def test_all_have_lists_offending_keys():
    result = single({"kind": "all_have", "where": {"type": "AI"}, "field": "range_high"})
    assert result["actual"] == "fail" and result["passed"] is False
    assert result["detail"] == "1 of 122 matching records lack range_high: TI-900"
    result = single({"kind": "all_have", "where": {"area": 300}, "field": "range_high"})
    assert result["actual"] == "pass" and result["detail"] == "all 121 matching records are fine"


def test_all_have_is_vacuously_true():
    result = single({"kind": "all_have", "where": {"type": "PID"}, "field": "range_high"})
    assert result["actual"] == "pass" and result["detail"] == "no records matched"


def test_none_have_caps_the_key_list_at_ten():
    result = single({"kind": "none_have", "field": "range_high"})
    assert result["actual"] == "fail"
    assert result["detail"] == ("121 of 127 matching records have range_high: TI-000, TI-001, "
                                "TI-002, TI-003, TI-004, TI-005, TI-006, TI-007, TI-008, TI-009, …")
    assert single({"kind": "none_have", "where": {"type": "DI"}, "field": "range_high"}
                  )["actual"] == "pass"


def test_all_match_counts_missing_fields_as_mismatches():
    result = single({"kind": "all_match", "where": {"type": "AI"}, "field": "tag",
                     "regex": "TI-\\d{3}"})
    assert result["detail"] == "1 of 122 matching records do not match on tag: pi-1"
    result = single({"kind": "all_match", "where": {"type": "AI"}, "field": "range_high",
                     "regex": "\\d+"})
    assert result["detail"] == "1 of 122 matching records do not match on range_high: TI-900"
    huge = [{"tag": "A", "note": "x" * 10_001}]
    assert single({"kind": "all_match", "field": "note", "regex": "x+"}, huge)["actual"] == "fail"


def test_exists():
    assert single({"kind": "exists", "where": {"tag": "XS-3", "area": 400}})["detail"] == "found 1"
    missing = single({"kind": "exists", "where": {"tag": "XS-9"}})
    assert missing["actual"] == "fail" and missing["detail"] == "no record found"


def test_expect_fail_turns_a_failing_assertion_into_a_pass():
    result = single({"kind": "exists", "where": {"tag": "NOPE"}, "expect": "fail"})
    assert result["expected"] == "fail" and result["actual"] == "fail" and result["passed"] is True
    result = single({"kind": "exists", "where": {"tag": "TI-001"}, "expect": "fail"})
    assert result["actual"] == "pass" and result["passed"] is False


def test_full_report():
    scenarios = [
        {"id": "a", "name": "Area 300 complete", "assertions": [
            {"kind": "count", "where": {"area": 300}, "op": "ge", "value": 100},
            {"kind": "all_have", "where": {"area": 300}, "field": "range_high"},
        ]},
        {"id": "b", "name": "Broken", "assertions": [
            {"kind": "exists", "where": {"type": "PID"}},
            {"kind": "none_have", "where": {"type": "DI"}, "field": "range_high"},
        ]},
    ]
    result = run(scenarios)
    assert result["passed"] == 1 and result["failed"] == 1 and result["recordsChecked"] == 127
    first, second = result["scenarios"]
    assert first["id"] == "a" and first["name"] == "Area 300 complete" and first["passed"] is True
    assert first["assertions"][0] == {
        "index": 0, "kind": "count", "description": "at least 100 records where area = 300",
        "expected": "pass", "actual": "pass", "passed": True, "detail": "found 121"}
    assert second["passed"] is False
    assert [a["passed"] for a in second["assertions"]] == [False, True]
    assert second["assertions"][1]["index"] == 1


def test_custom_key_field_and_no_records():
    records = [{"id": "r1", "x": 1}, {"id": "r2"}]
    result = run([{"name": "s", "assertions": [{"kind": "all_have", "field": "x"}]}], records,
                 key_field="id")
    assert result["scenarios"][0]["assertions"][0]["detail"].endswith(": r2")
    empty = run([{"name": "s", "assertions": [{"kind": "count", "value": 0}]}], [])
    assert empty["passed"] == 1 and empty["recordsChecked"] == 0
