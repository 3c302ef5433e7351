"""Validation rules over records, checked in one streaming pass.

A rule is ``{"id", "name", "kind", "field", "params"}``:

- ``required`` — the field is present and not empty (None, "", whitespace, [] and {} are empty).
- ``pattern``  — ``{"regex": "..."}``: str(value) must fully match. Values over
  ``MAX_CHECKED_LENGTH`` characters are reported instead of matched (regex run time).
- ``range``    — ``{"min"?, "max"?}`` (inclusive): the value must be a number or numeric text.
- ``allowed``  — ``{"values": [...]}``: the value must equal one of them.
- ``unique``   — no two records share the value; every later duplicate is reported.

Only ``required`` looks at missing/empty values; the other kinds skip them. Values are compared
with ``match_key``: numbers and numeric text compare numerically ("300" == 300 == 300.0),
booleans as "true"/"false", other text exactly (case-sensitive).
"""
from __future__ import annotations

import json
import math
import re
from typing import Callable, Iterable

KINDS = ("required", "pattern", "range", "allowed", "unique")
PARAMS = {"required": (), "pattern": ("regex",), "range": ("min", "max"),
          "allowed": ("values",), "unique": ()}
MAX_CHECKED_LENGTH = 10_000
MAX_REGEX_LENGTH = 1_000
MAX_ALLOWED_VALUES = 1_000
MAX_FINDINGS = 1_000
MAX_NAME_LENGTH = 200
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")


class RuleError(ValueError):
    """A rule definition is invalid; ``field_errors`` maps a field path to a message."""

    def __init__(self, field_errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in field_errors.items()))
        self.field_errors = dict(field_errors)


# --- value helpers (shared with scenarios) ---------------------------------------------------

def as_number(value: object) -> int | float | None:
    """The value as a finite number, if it is one or is numeric text; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if _INTEGER_RE.fullmatch(text):
            return int(text)
        if _NUMBER_RE.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def display(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def match_key(value: object) -> tuple | None:
    """Hashable form used for equality: ("n", number) or ("s", text); None when missing."""
    if value is None:
        return None
    number = as_number(value)
    if number is not None:
        return ("n", number)        # 300 and 300.0 hash and compare equal
    return ("s", display(value))


def is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, dict)) and not value


def short(value: object, limit: int = 200) -> object:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


def compile_regex(regex: object) -> re.Pattern:
    """Compile a user regex; raises ValueError with a message fit for the user."""
    if not isinstance(regex, str) or not regex:
        raise ValueError("must be a non-empty string")
    if len(regex) > MAX_REGEX_LENGTH:
        raise ValueError(f"must be at most {MAX_REGEX_LENGTH} characters")
    try:
        return re.compile(regex)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def check_name(value: object, required: bool) -> tuple[str | None, str | None]:
    """(normalised text, error message) for a name-like string field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ("is required" if required else None)
    if not isinstance(value, str):
        return None, "must be a string"
    if len(value.strip()) > MAX_NAME_LENGTH:
        return None, f"must be at most {MAX_NAME_LENGTH} characters"
    return value.strip(), None


def check_id(value: object) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    if isinstance(value, str) and 0 < len(value) <= 64:
        return None
    return "must be an integer or a string of 1-64 characters"


# --- definitions -----------------------------------------------------------------------------

def scalar_error(value: object) -> str | None:
    if isinstance(value, str):
        return None if len(value) <= 500 else "must be at most 500 characters"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None if isinstance(value, (bool, int, float)) else "must be a string, number or boolean"


def _check_params(kind: str, params: dict, errors: dict) -> dict:
    out = {}
    for name in params:
        if name not in PARAMS[kind]:
            expected = ", ".join(PARAMS[kind]) or "no parameters"
            errors[f"params.{name}"] = f"unknown parameter for {kind} (expected {expected})"
    if kind == "pattern":
        try:
            compile_regex(params.get("regex"))
            out["regex"] = params["regex"]
        except ValueError as exc:
            errors["params.regex"] = str(exc)
    elif kind == "range":
        for bound in ("min", "max"):
            if params.get(bound) is not None:
                number = as_number(params[bound])
                if number is None:
                    errors[f"params.{bound}"] = "must be a number"
                else:
                    out[bound] = number
        if "min" not in out and "max" not in out and not errors:
            errors["params"] = "give min, max or both"
        elif out.get("min", -math.inf) > out.get("max", math.inf):
            errors["params.max"] = "must not be less than min"
    elif kind == "allowed":
        values = params.get("values")
        if not isinstance(values, list) or not values:
            errors["params.values"] = "must be a non-empty list"
        elif len(values) > MAX_ALLOWED_VALUES:
            errors["params.values"] = f"must have at most {MAX_ALLOWED_VALUES} entries"
        else:
            for i, value in enumerate(values):
                if (message := scalar_error(value)) is not None:
                    errors[f"params.values[{i}]"] = message
            out["values"] = list(values)
    return out


def describe_rule(kind: str, field: str, params: dict) -> str:
    if kind == "required":
        return f"{field} is required"
    if kind == "pattern":
        return f"{field} matches {params['regex']}"
    if kind == "range":
        if "min" in params and "max" in params:
            return f"{field} between {params['min']} and {params['max']}"
        return f"{field} at least {params['min']}" if "min" in params else \
            f"{field} at most {params['max']}"
    if kind == "allowed":
        return f"{field} is one of {_listing(params['values'])}"
    return f"{field} is unique"


def _listing(values: list, limit: int = 5) -> str:
    text = ", ".join(display(v) for v in values[:limit])
    return text + (", …" if len(values) > limit else "")


def validate_rule_definition(rule: dict) -> dict:
    """Check a rule dict and return it normalised; raises RuleError listing every problem."""
    if not isinstance(rule, dict):
        raise RuleError({"rule": "must be an object"})
    errors: dict[str, str] = {}
    if (message := check_id(rule.get("id"))) is not None:
        errors["id"] = message
    name, message = check_name(rule.get("name"), required=False)
    if message:
        errors["name"] = message
    field, message = check_name(rule.get("field"), required=True)
    if message:
        errors["field"] = message
    kind = rule.get("kind")
    if kind not in KINDS:
        errors["kind"] = f"must be one of {', '.join(KINDS)}"
    params = rule.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        errors["params"] = "must be an object"
    elif kind in KINDS:
        params = _check_params(kind, params, errors)
    if errors:
        raise RuleError(errors)
    return {"id": rule.get("id"), "name": name or describe_rule(kind, field, params),
            "kind": kind, "field": field, "params": params}


# --- checking --------------------------------------------------------------------------------

def _make_check(rule: dict) -> Callable[[object, object], str | None]:
    """A function (value, record key) -> violation message or None."""
    kind, params = rule["kind"], rule["params"]
    if kind == "required":
        return lambda value, key: "value is missing" if is_empty(value) else None
    if kind == "pattern":
        regex = compile_regex(params["regex"])

        def pattern(value, key):
            text = display(value)
            if len(text) > MAX_CHECKED_LENGTH:
                return f"value is longer than {MAX_CHECKED_LENGTH} characters; not checked"
            if regex.fullmatch(text):
                return None
            return f"'{short(text)}' does not match {regex.pattern}"
        return pattern
    if kind == "range":
        low, high = params.get("min"), params.get("max")

        def in_range(value, key):
            number = as_number(value)
            if number is None:
                return f"'{short(display(value))}' is not a number"
            if low is not None and number < low:
                return f"{display(value)} is below the minimum {low}"
            if high is not None and number > high:
                return f"{display(value)} is above the maximum {high}"
            return None
        return in_range
    if kind == "allowed":
        allowed = {match_key(v) for v in params["values"]}
        listing = _listing(params["values"])
        return lambda value, key: None if match_key(value) in allowed else \
            f"'{short(display(value))}' is not one of {listing}"
    first_keys: dict = {}

    def unique(value, key):
        value_key = match_key(value)
        if value_key not in first_keys:
            first_keys[value_key] = key
            return None
        return f"duplicate of the value in {first_keys[value_key]}"
    return unique


class Validator:
    """Feed every record once, then ``finish()`` for the summary and findings."""

    def __init__(self, rules: Iterable[dict], max_findings: int = MAX_FINDINGS):
        self.rules = [validate_rule_definition(r) for r in rules]
        self._checks = [(r, r["field"], r["kind"] == "required", _make_check(r))
                        for r in self.rules]
        self._counts = [0] * len(self.rules)
        self._max_findings = max_findings
        self._findings: list[dict] = []
        self._records = 0
        self._total = 0

    def feed(self, key: object, record: dict) -> None:
        self._records += 1
        for index, (rule, field, required, check) in enumerate(self._checks):
            value = record.get(field)
            if not required and is_empty(value):
                continue
            message = check(value, key)
            if message is None:
                continue
            self._counts[index] += 1
            self._total += 1
            if len(self._findings) < self._max_findings:
                self._findings.append({"key": key, "ruleId": rule["id"], "ruleName": rule["name"],
                                       "field": field, "value": short(value), "message": message})

    def finish(self) -> dict:
        return {
            "recordsChecked": self._records,
            "violations": self._total,
            "rules": [{"id": r["id"], "name": r["name"], "kind": r["kind"], "field": r["field"],
                       "violations": n} for r, n in zip(self.rules, self._counts)],
            "findings": list(self._findings),
            "findingsTruncated": self._total > len(self._findings),
        }
