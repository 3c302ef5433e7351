"""Test scenarios: named lists of assertions checked over all records in one streaming pass.

A scenario is ``{"id", "name", "assertions": [...]}``. Every assertion may carry
``"where": {field: value, ...}`` (records whose fields equal all of these; numbers and numeric
text compare numerically, so "300" == 300) and ``"expect": "pass" | "fail"`` (default
"pass"). An assertion *passes* when its actual outcome equals ``expect``; a scenario passes
when all of its assertions pass. Kinds:

- ``count``     — ``{"op": "eq|ne|gt|ge|lt|le" (default eq), "value": n}``: the number of
  matching records compared with n. "exactly 120 records where area = 300".
- ``all_have``  — ``{"field": f}``: every matching record has a non-empty f.
  "every record where type = AI has range_high". True when nothing matches.
- ``none_have`` — ``{"field": f}``: no matching record has a non-empty f.
- ``all_match`` — ``{"field": f, "regex": r}``: every matching record has f and str(f) fully
  matches r (a missing f counts as not matching). True when nothing matches.
- ``exists``    — ``{"where": {...}}`` (required, non-empty): at least one record matches.

Results report, per assertion, a generated ``description``, the ``expected`` and ``actual``
outcomes ("pass"/"fail") and a ``detail`` such as "found 118" or the first offending keys.
"""
from __future__ import annotations

import operator
from typing import Iterable

from app.projects.rules import (MAX_CHECKED_LENGTH, check_id, check_name, compile_regex,
                                display, is_empty, match_key, scalar_error)

KINDS = ("count", "all_have", "none_have", "all_match", "exists")
OPS = {"eq": (operator.eq, "exactly"), "ne": (operator.ne, "not exactly"),
       "gt": (operator.gt, "more than"), "ge": (operator.ge, "at least"),
       "lt": (operator.lt, "fewer than"), "le": (operator.le, "at most")}
MAX_ASSERTIONS = 100
MAX_WHERE_FIELDS = 20
MAX_LISTED_KEYS = 10
_MISSING = object()


class ScenarioError(ValueError):
    """A scenario definition is invalid; ``field_errors`` maps a field path to a message."""

    def __init__(self, field_errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in field_errors.items()))
        self.field_errors = dict(field_errors)


def _check_where(where: object, path: str, required: bool, errors: dict) -> dict:
    if where is None or where == {}:
        if required:
            errors[path] = "give at least one field to match"
        return {}
    if not isinstance(where, dict):
        errors[path] = "must be an object of field: value"
        return {}
    if len(where) > MAX_WHERE_FIELDS:
        errors[path] = f"must have at most {MAX_WHERE_FIELDS} fields"
    for field, value in where.items():
        if not isinstance(field, str) or not field.strip():
            errors[path] = "field names must not be empty"
        elif (message := scalar_error(value)) is not None:
            errors[f"{path}.{field}"] = message
    return dict(where)


def _check_assertion(item: object, path: str, errors: dict) -> dict:
    if not isinstance(item, dict):
        errors[path] = "must be an object"
        return {}
    kind = item.get("kind")
    if kind not in KINDS:
        errors[f"{path}.kind"] = f"must be one of {', '.join(KINDS)}"
        return {}
    expect = item.get("expect") or "pass"
    if expect not in ("pass", "fail"):
        errors[f"{path}.expect"] = "must be pass or fail"
    out = {"kind": kind,
           "where": _check_where(item.get("where"), f"{path}.where", kind == "exists", errors),
           "expect": expect}
    if kind == "count":
        out["op"] = item.get("op") or "eq"
        if out["op"] not in OPS:
            errors[f"{path}.op"] = f"must be one of {', '.join(OPS)}"
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors[f"{path}.value"] = "must be a whole number, 0 or more"
        out["value"] = value
    elif kind != "exists":
        field, message = check_name(item.get("field"), required=True)
        if message:
            errors[f"{path}.field"] = message
        out["field"] = field
    if kind == "all_match":
        try:
            compile_regex(item.get("regex"))
        except ValueError as exc:
            errors[f"{path}.regex"] = str(exc)
        out["regex"] = item.get("regex")
    return out


def validate_scenario_definition(scenario: dict) -> dict:
    """Check a scenario dict and return it normalised; raises ScenarioError listing problems."""
    if not isinstance(scenario, dict):
        raise ScenarioError({"scenario": "must be an object"})
    errors: dict[str, str] = {}
    if (message := check_id(scenario.get("id"))) is not None:
        errors["id"] = message
    name, message = check_name(scenario.get("name"), required=True)
    if message:
        errors["name"] = message
    items = scenario.get("assertions")
    assertions = []
    if not isinstance(items, list) or not items:
        errors["assertions"] = "must be a non-empty list"
    elif len(items) > MAX_ASSERTIONS:
        errors["assertions"] = f"must have at most {MAX_ASSERTIONS} entries"
    else:
        assertions = [_check_assertion(a, f"assertions[{i}]", errors) for i, a in enumerate(items)]
    if errors:
        raise ScenarioError(errors)
    return {"id": scenario.get("id"), "name": name, "assertions": assertions}


def _value_text(value: object) -> str:
    text = display(value)
    return text if text and " " not in text else f'"{text}"'


def describe(assertion: dict) -> str:
    """A human sentence for an assertion, e.g. "exactly 120 records where area = 300"."""
    where = assertion["where"]
    clause = " and ".join(f"{f} = {_value_text(v)}" for f, v in where.items())
    clause = f" where {clause}" if clause else ""
    kind = assertion["kind"]
    if kind == "count":
        noun = "record" if assertion["value"] == 1 else "records"
        return f"{OPS[assertion['op']][1]} {assertion['value']} {noun}{clause}"
    if kind == "exists":
        return f"at least one record{clause}"
    subject = f"every record{clause}" if kind != "none_have" else f"no record{clause}"
    if kind == "all_match":
        return f"{subject} has {assertion['field']} matching {assertion['regex']}"
    return f"{subject} has {assertion['field']}"


class _Check:
    """Running state of one assertion."""

    def __init__(self, assertion: dict):
        self.a = assertion
        self.where = [(f, match_key(v)) for f, v in assertion["where"].items()]
        self.regex = compile_regex(assertion["regex"]) if assertion["kind"] == "all_match" else None
        self.matched = 0
        self.bad = 0
        self.keys: list = []

    def feed(self, record: dict, key: object, cache: dict) -> None:
        for field, wanted in self.where:
            have = cache.get(field, _MISSING)
            if have is _MISSING:
                have = cache[field] = match_key(record.get(field))
            if have != wanted:
                return
        self.matched += 1
        kind = self.a["kind"]
        if kind in ("count", "exists"):
            return
        value = record.get(self.a["field"])
        if kind == "all_have":
            offending = is_empty(value)
        elif kind == "none_have":
            offending = not is_empty(value)
        else:
            text = None if value is None else display(value)
            offending = (text is None or len(text) > MAX_CHECKED_LENGTH
                         or self.regex.fullmatch(text) is None)
        if offending:
            self.bad += 1
            if len(self.keys) < MAX_LISTED_KEYS:
                self.keys.append(key)

    def outcome(self) -> tuple[bool, str]:
        kind, n = self.a["kind"], self.matched
        if kind == "count":
            return OPS[self.a["op"]][0](n, self.a["value"]), f"found {n}"
        if kind == "exists":
            return n > 0, f"found {n}" if n else "no record found"
        if n == 0:
            return True, "no records matched"
        if self.bad == 0:
            return True, f"all {n} matching records are fine"
        listed = ", ".join(display(k) for k in self.keys)
        if self.bad > len(self.keys):
            listed += ", …"
        problem = {"all_have": f"lack {self.a['field']}", "none_have": f"have {self.a['field']}",
                   "all_match": f"do not match on {self.a['field']}"}[kind]
        return False, f"{self.bad} of {n} matching records {problem}: {listed}"


class ScenarioRunner:
    """Feed every record once, then ``finish()`` for per-scenario and per-assertion results."""

    def __init__(self, scenarios: Iterable[dict], key_field: str = "tag"):
        self.scenarios = [validate_scenario_definition(s) for s in scenarios]
        self.key_field = key_field
        self._checks = [[_Check(a) for a in s["assertions"]] for s in self.scenarios]
        self._flat = [c for checks in self._checks for c in checks]
        self._records = 0

    def feed(self, record: dict) -> None:
        self._records += 1
        key = record.get(self.key_field)
        cache: dict = {}
        for check in self._flat:
            check.feed(record, key, cache)

    def finish(self) -> dict:
        results = []
        for scenario, checks in zip(self.scenarios, self._checks):
            items = []
            for index, check in enumerate(checks):
                ok, detail = check.outcome()
                actual = "pass" if ok else "fail"
                items.append({"index": index, "kind": check.a["kind"],
                              "description": describe(check.a), "expected": check.a["expect"],
                              "actual": actual, "passed": actual == check.a["expect"],
                              "detail": detail})
            results.append({"id": scenario["id"], "name": scenario["name"],
                            "passed": all(i["passed"] for i in items), "assertions": items})
        passed = sum(r["passed"] for r in results)
        return {"scenarios": results, "passed": passed, "failed": len(results) - passed,
                "recordsChecked": self._records}
