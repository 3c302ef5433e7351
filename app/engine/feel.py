"""A small, safe subset of FEEL for BPMN sequence-flow conditions.

Expressions are tokenized and parsed by hand into a tree of plain nodes and then
evaluated against a dict of process variables. Nothing is ever handed to Python's
eval/exec, and names are only ever looked up as dict keys, never as attributes.

Grammar (one leading ``=``, as Camunda Modeler writes it, is stripped first)::

    expression  := disjunction
    disjunction := conjunction ( "or" conjunction )*
    conjunction := negation ( "and" negation )*
    negation    := "not" negation | comparison          -- "not" not followed by "("
    comparison  := unary ( compare_op unary )?          -- no chaining: a < b < c is an error
    compare_op  := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    unary       := "-" unary | primary
    primary     := number | string | "true" | "false" | "null"
                 | "not" "(" expression ")"             -- FEEL's not(): `not(a) = b` compares
                 | "(" expression ")"
                 | path
    path        := name ( "." name )*
    name        := [A-Za-z_][A-Za-z0-9_]*               -- keywords are not names
    number      := digits [ "." digits ] | "." digits   -- int without a dot, float with one
    string      := '"' ( any char but '"' or '\\' | escape )* '"'
    escape      := '\\"' | '\\\\' | '\\n' | '\\t' | '\\r'

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons, unary minus.

Semantics (FEEL three-valued logic; ``null`` is Python ``None``):

- ``order.total`` walks nested objects; a missing key or a non-object on the way gives null.
- ``=``/``==`` and ``!=``: null = null is true, null = anything else is false; numbers
  compare numerically (1 = 1.0); values of the same type compare by value; values of
  incompatible types (e.g. ``"1" = 1``, ``true = 1``) give null.
- ``< <= > >=`` work on two numbers or two strings (by code point); anything else,
  including null on either side, gives null.
- ``and`` is false if either side is false, true if both are true, otherwise null;
  ``or`` is true if either side is true, false if both are false, otherwise null;
  ``not`` maps true/false to false/true and anything else to null. A non-boolean
  operand counts as null.
- unary minus negates a number; on anything else it gives null.

A sequence-flow condition is taken only when it evaluates to exactly ``true``.
Expressions are limited to MAX_LENGTH characters and MAX_DEPTH levels of nesting.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

MAX_LENGTH = 2000
MAX_DEPTH = 40

KEYWORDS = {"true", "false", "null", "and", "or", "not"}
COMPARE_OPS = ("=", "==", "!=", "<", "<=", ">", ">=")
_CONSTANTS = {"true": True, "false": False, "null": None}
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


class FeelError(ValueError):
    """A syntax error; `position` is a 0-based offset into the text given to compile()."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


# --- tokenizer ---------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "string", "name", "end", or the keyword/operator itself
    value: object
    pos: int
    text: str


_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<junk>[A-Za-z0-9_.]*))
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|[=<>().-])
""", re.VERBOSE | re.DOTALL)
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(raw: str, pos: int) -> str:
    def replace(m: re.Match) -> str:
        if m.group(1) not in _ESCAPES:
            raise FeelError(f"invalid escape '\\{m.group(1)}' in string", pos + 1 + m.start())
        return _ESCAPES[m.group(1)]
    return _ESCAPE_RE.sub(replace, raw[1:-1])


def _tokenize(text: str, offset: int) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        pos = offset + i
        if m is None:
            what = "unterminated string" if text[i] == '"' else f"unexpected character {text[i]!r}"
            raise FeelError(what, pos)
        kind, raw = m.lastgroup, m.group()
        if kind == "number":
            if m.group("junk"):
                raise FeelError(f"malformed number '{raw}'", pos)
            tokens.append(_Token(kind, float(raw) if "." in raw else int(raw), pos, raw))
        elif kind == "string":
            tokens.append(_Token(kind, _unescape(raw, pos), pos, raw))
        elif kind == "op" or raw in KEYWORDS:
            tokens.append(_Token(raw, raw, pos, raw))
        elif kind == "name":
            tokens.append(_Token(kind, raw, pos, raw))
        i = m.end()
    tokens.append(_Token("end", None, offset + len(text), "end of expression"))
    return tokens


# --- AST -----------------------------------------------------------------------

def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_bool(v: object) -> bool | None:
    return v if isinstance(v, bool) else None


@dataclass(frozen=True)
class Literal:
    value: object

    def eval(self, variables: dict) -> object:
        return self.value


@dataclass(frozen=True)
class Path:
    names: tuple[str, ...]

    def eval(self, variables: dict) -> object:
        current: object = variables
        for name in self.names:
            if not isinstance(current, Mapping):
                return None
            current = current.get(name)
        return current


@dataclass(frozen=True)
class Negate:
    operand: object

    def eval(self, variables: dict) -> object:
        v = self.operand.eval(variables)
        return -v if _is_number(v) else None


@dataclass(frozen=True)
class Not:
    operand: object

    def eval(self, variables: dict) -> object:
        v = _as_bool(self.operand.eval(variables))
        return None if v is None else not v


@dataclass(frozen=True)
class Junction:
    op: str  # "and" | "or"
    operands: tuple  # n-ary so long chains do not build deep trees

    def eval(self, variables: dict) -> object:
        decisive = self.op == "or"  # `or` stops at the first true, `and` at the first false
        result: bool | None = not decisive
        for operand in self.operands:
            v = _as_bool(operand.eval(variables))
            if v is decisive:
                return decisive
            if v is None:
                result = None
        return result


def _equal(a: object, b: object) -> bool | None:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is not type(b):
        return None
    return a == b


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _order(op: str, a: object, b: object) -> bool | None:
    if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return _ORDER[op](a, b)
    return None


@dataclass(frozen=True)
class Compare:
    op: str
    left: object
    right: object

    def eval(self, variables: dict) -> object:
        a, b = self.left.eval(variables), self.right.eval(variables)
        if self.op in ("=", "=="):
            return _equal(a, b)
        if self.op == "!=":
            eq = _equal(a, b)
            return None if eq is None else not eq
        return _order(self.op, a, b)


# --- parser ------------------------------------------------------------------

class _Parser:
    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def at(self, *kinds: str) -> bool:
        return self.tok.kind in kinds

    def advance(self) -> _Token:
        self.i += 1
        return self.tokens[self.i - 1]

    def nested(self, parse, tok: _Token):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FeelError(f"expression is nested too deeply (limit {MAX_DEPTH})", tok.pos)
        node = parse()
        self.depth -= 1
        return node

    def fail(self, expected: str) -> NoReturn:
        tok = self.tok
        found = "end of expression" if tok.kind == "end" else f"'{tok.text}'"
        raise FeelError(f"unexpected {found}, expected {expected}", tok.pos)

    def parse(self):
        node = self.nested(self.disjunction, self.tok)
        if not self.at("end"):
            self.fail("an operator or the end of the expression")
        return node

    def disjunction(self):
        return self.junction("or", self.conjunction)

    def conjunction(self):
        return self.junction("and", self.negation)

    def junction(self, op: str, operand):
        operands = [operand()]
        while self.at(op):
            self.advance()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Junction(op, tuple(operands))

    def negation(self):
        # `not(` is the FEEL function form and binds like a primary, so `not(a) = b` compares.
        if self.at("not") and self.tokens[self.i + 1].kind != "(":
            return Not(self.nested(self.negation, self.advance()))
        return self.comparison()

    def comparison(self):
        left = self.unary()
        if not self.at(*COMPARE_OPS):
            return left
        op = self.advance().kind
        right = self.unary()
        if self.at(*COMPARE_OPS):
            raise FeelError("comparisons cannot be chained; combine them with 'and'", self.tok.pos)
        return Compare(op, left, right)

    def unary(self):
        if not self.at("-"):
            return self.primary()
        node = self.nested(self.unary, self.advance())
        if isinstance(node, Literal) and _is_number(node.value):
            return Literal(-node.value)
        return Negate(node)

    def primary(self):
        tok = self.tok
        if tok.kind in ("number", "string"):
            self.advance()
            return Literal(tok.value)
        if tok.kind in _CONSTANTS:
            self.advance()
            return Literal(_CONSTANTS[tok.kind])
        if tok.kind == "not":
            self.advance()
            if not self.at("("):
                self.fail("'(' after 'not'")
            return Not(self.parenthesized())
        if tok.kind == "(":
            return self.parenthesized()
        if tok.kind == "name":
            return self.path()
        self.fail("a value")

    def parenthesized(self):
        open_tok = self.advance()
        node = self.nested(self.disjunction, open_tok)
        if not self.at(")"):
            self.fail(f"')' for the '(' opened at position {open_tok.pos}")
        self.advance()
        return node

    def path(self):
        names = [self.advance().value]
        while self.at("."):
            self.advance()
            if not self.at("name"):
                self.fail("a name after '.'")
            names.append(self.advance().value)
        if self.at("("):
            raise FeelError("function calls are not supported", self.tok.pos)
        return Path(tuple(names))


# --- public API ------------------------------------------------------------------

@dataclass(frozen=True)
class Expression:
    source: str
    root: object

    def evaluate(self, variables: dict | None) -> object:
        return self.root.eval(variables if isinstance(variables, Mapping) else {})

    def is_true(self, variables: dict | None) -> bool:
        """Whether a condition is taken: only an exact `true` counts."""
        return self.evaluate(variables) is True


def compile(expr: str) -> Expression:  # noqa: A001 - the natural name for this API
    if not isinstance(expr, str):
        raise FeelError("expression must be a string", 0)
    if len(expr) > MAX_LENGTH:
        raise FeelError(f"expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    body_start = len(expr) - len(expr.lstrip())
    if expr.startswith("=", body_start):
        body_start += 1
    body = expr[body_start:]
    if not body.strip():
        raise FeelError("empty expression", len(expr))
    root = _Parser(_tokenize(body, body_start)).parse()
    return Expression(expr, root)


def evaluate(expr: str, variables: dict | None) -> object:
    return compile(expr).evaluate(variables)
