"""Xero's `where` filter: a small parser and evaluator over a record's Xero JSON (pure).

Supported: paths (`Status`, `Contact.ContactID`), literals ("text", numbers, true/false/null,
guid("..."), DateTime(y,m,d[,h,m,s])), comparisons == = != <> >= <= > <, string methods
.Contains/.StartsWith/.EndsWith/.ToLower/.ToUpper, AND/OR/&&/||/NOT/! and parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from .xero_json import parse_ms_date

TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|<>|>=|<=|&&|\|\||[=<>!(),.])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
COMPARISONS = {"==", "=", "!=", "<>", ">=", "<=", ">", "<"}
METHODS = {"contains", "startswith", "endswith", "tolower", "toupper"}


class WhereError(ValueError):
    """The expression cannot be parsed or refers to an unknown field."""


@dataclass(frozen=True)
class Guid:
    value: str


def compile_where(text: str, fields: set[str]):
    """A predicate over a Xero JSON dict; `fields` are the resource's top-level property names."""
    parser = _Parser(_tokens(text), {f.lower() for f in fields})
    node = parser.expression()
    if parser.peek() is not None:
        raise WhereError(f"Unexpected token {parser.peek()[1]!r} in where clause")
    return lambda record: _truthy(node(record))


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise WhereError(f"Cannot parse where clause near {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens, fields) -> None:
        self.tokens, self.pos, self.fields = tokens, 0, fields

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None):
        token = self.peek()
        if token is None or (value is not None and token[1].lower() != value.lower()):
            raise WhereError(f"Expected {value or 'more input'} in where clause")
        self.pos += 1
        return token

    def at(self, *values: str) -> bool:
        token = self.peek()
        return token is not None and token[0] in ("op", "name") and token[1].upper() in values

    def expression(self):
        left = self.conjunction()
        while self.at("OR", "||"):
            self.take()
            left = _either(left, self.conjunction())
        return left

    def conjunction(self):
        left = self.unary()
        while self.at("AND", "&&"):
            self.take()
            left = _both(left, self.unary())
        return left

    def unary(self):
        if self.at("NOT", "!"):
            self.take()
            inner = self.unary()
            return lambda r: not _truthy(inner(r))
        return self.comparison()

    def comparison(self):
        left = self.operand()
        token = self.peek()
        if token and token[0] == "op" and token[1] in COMPARISONS:
            self.take()
            return _compare(token[1], left, self.operand())
        return left

    def operand(self):
        token = self.take()
        kind, text = token
        if kind == "op" and text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "string":
            value = bytes(text[1:-1], "utf-8").decode("unicode_escape")
            return self.methods(lambda r, v=value: v)
        if kind == "number":
            return lambda r, v=Decimal(text): v
        if kind != "name":
            raise WhereError(f"Unexpected {text!r} in where clause")
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lambda r, v=(lowered == "true"): v
        if lowered == "null":
            return lambda r: None
        if lowered == "guid" and self.at("("):
            return self.guid()
        if lowered in ("datetime", "datetimeoffset") and self.at("("):
            return self.datetime()
        return self.path(text)

    def guid(self):
        self.take("(")
        kind, text = self.take()
        if kind != "string":
            raise WhereError("guid() takes a quoted value")
        self.take(")")
        value = Guid(text[1:-1].lower())
        return lambda r: value

    def datetime(self):
        self.take("(")
        parts = []
        while True:
            kind, text = self.take()
            if kind != "number":
                raise WhereError("DateTime() takes numbers")
            parts.append(int(Decimal(text)))
            if self.at(")"):
                self.take(")")
                break
            self.take(",")
        try:
            value = datetime(*parts, tzinfo=UTC)
        except (TypeError, ValueError) as exc:
            raise WhereError(f"Invalid DateTime{tuple(parts)}") from exc
        return lambda r, v=value: v

    def path(self, first: str):
        if first.lower() not in self.fields:
            raise WhereError(f"No property or field '{first}' exists in this resource")
        segments = [first]
        while self.at(".") and self._next_is_segment():
            self.take(".")
            segments.append(self.take()[1])
        def getter(r, s=tuple(segments)):
            return field_value(r, s)

        return self.methods(getter)

    def _next_is_segment(self) -> bool:
        nxt = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
        after = self.tokens[self.pos + 2] if self.pos + 2 < len(self.tokens) else None
        if nxt is None or nxt[0] != "name":
            return False
        return not (nxt[1].lower() in METHODS and after is not None and after[1] == "(")

    def methods(self, getter):
        while self.at("."):
            self.take(".")
            name = self.take()[1].lower()
            if name not in METHODS:
                raise WhereError(f"Unsupported method {name!r} in where clause")
            self.take("(")
            argument = None if self.at(")") else self.operand()
            self.take(")")
            getter = _method(name, getter, argument)
        return getter


def field_value(record, segments):
    value = record
    for segment in segments:
        if not isinstance(value, dict):
            return None
        key = next((k for k in value if k.lower() == segment.lower()), None)
        value = value.get(key) if key is not None else None
    return _normalise(value)


def _normalise(value):
    if isinstance(value, str):
        return parse_ms_date(value) or value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


def _method(name, getter, argument):
    def call(record):
        value = getter(record)
        if not isinstance(value, str):
            return None if name in ("tolower", "toupper") else False
        if name == "tolower":
            return value.lower()
        if name == "toupper":
            return value.upper()
        needle = argument(record) if argument else ""
        needle = needle if isinstance(needle, str) else str(needle)
        return {
            "contains": needle in value,
            "startswith": value.startswith(needle),
            "endswith": value.endswith(needle),
        }[name]

    return call


def _either(left, right):
    return lambda r: _truthy(left(r)) or _truthy(right(r))


def _both(left, right):
    return lambda r: _truthy(left(r)) and _truthy(right(r))


def _truthy(value) -> bool:
    return value is True


def _compare(op, left, right):
    def check(record):
        a, b = _coerce(left(record), right(record))
        if op in ("==", "="):
            return a == b
        if op in ("!=", "<>"):
            return a != b
        if a is None or b is None:
            return False
        try:
            return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]
        except TypeError:
            return False

    return check


def _coerce(a, b):
    if isinstance(a, Guid) or isinstance(b, Guid):
        return _guid_text(a), _guid_text(b)
    if isinstance(a, Decimal) and isinstance(b, str):
        return a, _decimal(b)
    if isinstance(b, Decimal) and isinstance(a, str):
        return _decimal(a), b
    return a, b


def _guid_text(value):
    if isinstance(value, Guid):
        return value.value
    return value.lower() if isinstance(value, str) else value


def _decimal(text: str):
    try:
        return Decimal(text)
    except InvalidOperation:
        return text
