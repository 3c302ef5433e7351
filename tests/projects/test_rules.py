import pytest

from app.projects.rules import (RuleError, Validator, as_number, match_key,
                                validate_rule_definition)

RECORDS = [
    ("TI-100", {"tag": "TI-100", "type": "AI", "area": 300, "range_low": 0, "range_high": 150}),
    ("TI-101", {"tag": "TI-101", "type": "AI", "area": "300", "range_high": "250.5"}),
    ("PI-7", {"tag": "PI-7", "type": "XX", "area": 300.0, "range_high": "high", "unit": " "}),
    ("LS-1", {"tag": "ls-1", "type": "DI", "area": 400, "range_high": -5}),
]


def run(rules, records=RECORDS, **kwargs):
    validator = Validator(rules, **kwargs)
    for key, record in records:
        validator.feed(key, record)
    return validator.finish()


def errors_of(rule):
    with pytest.raises(RuleError) as info:
        validate_rule_definition(rule)
    return info.value.field_errors


# --- definitions -----------------------------------------------------------------------------

def test_definition_is_normalised_with_a_generated_name():
    rule = validate_rule_definition({"id": "r1", "kind": "range", "field": " range_high ",
                                     "params": {"min": "0", "max": 200}, "extra": "ignored"})
    assert rule == {"id": "r1", "name": "range_high between 0 and 200", "kind": "range",
                    "field": "range_high", "params": {"min": 0, "max": 200}}
    assert validate_rule_definition({"kind": "required", "field": "unit", "name": " Units "}) == \
        {"id": None, "name": "Units", "kind": "required", "field": "unit", "params": {}}
    assert validate_rule_definition({"kind": "allowed", "field": "type",
                                     "params": {"values": ["AI", "AO", "DI", "DO", "PID", "X"]}}
                                    )["name"] == "type is one of AI, AO, DI, DO, PID, …"
    assert validate_rule_definition({"kind": "range", "field": "f", "params": {"max": 1}}
                                    )["name"] == "f at most 1"


@pytest.mark.parametrize("rule, expected", [
    ("nope", {"rule": "must be an object"}),
    ({}, {"field": "is required",
          "kind": "must be one of required, pattern, range, allowed, unique"}),
    ({"kind": "required", "field": 5}, {"field": "must be a string"}),
    ({"kind": "required", "field": "x" * 201}, {"field": "must be at most 200 characters"}),
    ({"kind": "required", "field": "f", "id": True},
     {"id": "must be an integer or a string of 1-64 characters"}),
    ({"kind": "required", "field": "f", "params": []}, {"params": "must be an object"}),
    ({"kind": "required", "field": "f", "params": {"regex": "x"}},
     {"params.regex": "unknown parameter for required (expected no parameters)"}),
    ({"kind": "pattern", "field": "f"}, {"params.regex": "must be a non-empty string"}),
    ({"kind": "pattern", "field": "f", "params": {"regexp": "x"}},
     {"params.regexp": "unknown parameter for pattern (expected regex)",
      "params.regex": "must be a non-empty string"}),
    ({"kind": "pattern", "field": "f", "params": {"regex": "a" * 1001}},
     {"params.regex": "must be at most 1000 characters"}),
    ({"kind": "range", "field": "f", "params": {}}, {"params": "give min, max or both"}),
    ({"kind": "range", "field": "f", "params": {"min": "low", "max": True}},
     {"params.min": "must be a number", "params.max": "must be a number"}),
    ({"kind": "range", "field": "f", "params": {"min": 5, "max": 1}},
     {"params.max": "must not be less than min"}),
    ({"kind": "allowed", "field": "f", "params": {"values": []}},
     {"params.values": "must be a non-empty list"}),
    ({"kind": "allowed", "field": "f", "params": {"values": ["a", None, {"x": 1}]}},
     {"params.values[1]": "must be a string, number or boolean",
      "params.values[2]": "must be a string, number or boolean"}),
    ({"kind": "allowed", "field": "f", "params": {"values": list(range(1001))}},
     {"params.values": "must have at most 1000 entries"}),
])
def test_definition_errors(rule, expected):
    assert errors_of(rule) == expected


def test_bad_regex_is_reported_at_definition_time():
    errors = errors_of({"kind": "pattern", "field": "tag", "params": {"regex": "TI-(\\d+"}})
    assert errors["params.regex"].startswith("not a valid regular expression: missing )")
    assert "params.regex" in str(RuleError(errors))


def test_validator_rejects_invalid_rules():
    with pytest.raises(RuleError):
        Validator([{"kind": "bogus", "field": "f"}])


# --- value helpers ---------------------------------------------------------------------------

def test_numbers_and_numeric_text_compare_equal():
    assert as_number(" 12 ") == 12 and as_number("1e3") == 1000.0 and as_number("-.5") == -0.5
    assert as_number("nan") is None and as_number("1e999") is None and as_number(True) is None
    assert as_number("1_000") is None and as_number("") is None
    assert match_key("300") == match_key(300) == match_key(300.0)
    assert match_key(True) == match_key("true") != match_key("True")
    assert match_key(None) is None


# --- checking --------------------------------------------------------------------------------

def test_required():
    result = run([{"id": 1, "kind": "required", "field": "unit"}])
    assert result["violations"] == 4 and result["recordsChecked"] == 4
    assert result["findings"][0] == {"key": "TI-100", "ruleId": 1, "ruleName": "unit is required",
                                     "field": "unit", "value": None, "message": "value is missing"}
    assert result["findings"][2]["value"] == " "      # whitespace only counts as empty


def test_pattern_skips_missing_values_and_matches_whole_text():
    result = run([{"id": "p", "kind": "pattern", "field": "tag",
                   "params": {"regex": "[A-Z]{2}-\\d+"}},
                  {"id": "q", "kind": "pattern", "field": "range_low", "params": {"regex": "\\d"}}])
    assert [(f["key"], f["ruleId"]) for f in result["findings"]] == [("LS-1", "p")]
    assert result["findings"][0]["message"] == "'ls-1' does not match [A-Z]{2}-\\d+"
    assert result["rules"] == [
        {"id": "p", "name": "tag matches [A-Z]{2}-\\d+", "kind": "pattern", "field": "tag",
         "violations": 1},
        {"id": "q", "name": "range_low matches \\d", "kind": "pattern", "field": "range_low",
         "violations": 0}]


def test_pattern_refuses_to_match_huge_values():
    huge = [("A", {"tag": "A" * 10_001}), ("B", {"tag": "B" * 10_000})]
    result = run([{"kind": "pattern", "field": "tag", "params": {"regex": "[A-Z]+"}}], huge)
    assert result["violations"] == 1
    assert result["findings"][0]["key"] == "A"
    assert "longer than 10000" in result["findings"][0]["message"]
    assert len(result["findings"][0]["value"]) == 201          # shortened in the report


def test_range():
    result = run([{"kind": "range", "field": "range_high", "params": {"min": 0, "max": 200}}])
    assert [(f["key"], f["message"]) for f in result["findings"]] == [
        ("TI-101", "250.5 is above the maximum 200"),
        ("PI-7", "'high' is not a number"),
        ("LS-1", "-5 is below the minimum 0"),
    ]
    only_min = run([{"kind": "range", "field": "range_high", "params": {"min": "-10"}}])
    assert only_min["violations"] == 1 and only_min["findings"][0]["key"] == "PI-7"


def test_allowed_compares_numbers_numerically():
    result = run([{"kind": "allowed", "field": "type", "params": {"values": ["AI", "DI"]}},
                  {"kind": "allowed", "field": "area", "params": {"values": ["300"]}}])
    assert [(f["key"], f["field"], f["message"]) for f in result["findings"]] == [
        ("PI-7", "type", "'XX' is not one of AI, DI"),
        ("LS-1", "area", "'400' is not one of 300"),
    ]


def test_unique_reports_every_later_duplicate_and_ignores_missing():
    records = [("A", {"n": 1}), ("B", {"n": "1"}), ("C", {"n": 2}), ("D", {}), ("E", {}),
               ("F", {"n": 1.0}), ("G", {"n": "x"}), ("H", {"n": "X"})]
    result = run([{"kind": "unique", "field": "n"}], records)
    assert [(f["key"], f["message"]) for f in result["findings"]] == [
        ("B", "duplicate of the value in A"), ("F", "duplicate of the value in A")]


def test_findings_are_truncated_but_counts_are_complete():
    records = [(f"T{i}", {"tag": f"T{i}"}) for i in range(2500)]
    result = run([{"id": "r", "kind": "required", "field": "unit"},
                  {"id": "s", "kind": "pattern", "field": "tag", "params": {"regex": "X"}}],
                 records)
    assert result["violations"] == 5000
    assert [r["violations"] for r in result["rules"]] == [2500, 2500]
    assert len(result["findings"]) == 1000 and result["findingsTruncated"] is True
    small = run([{"kind": "required", "field": "unit"}], records[:3])
    assert small["findingsTruncated"] is False and len(small["findings"]) == 3


def test_no_rules_and_no_records():
    assert run([], []) == {"recordsChecked": 0, "violations": 0, "rules": [], "findings": [],
                           "findingsTruncated": False}
