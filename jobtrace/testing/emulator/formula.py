"""Airtable's formula language: tokenizer, parser and evaluator.

This is what the emulator uses for ``filterByFormula`` and to compute formula
fields on read. It covers the language as :mod:`pyairtable.formulas` writes
it (``{Field Name}`` references with ``\\}`` escapes, bare single-word field
names, strings in ``'`` or ``"`` with backslash escapes, numbers, the
operators ``= != <> < > <= >= & + - * /``) and a set of functions large
enough for tracking code (see :data:`FUNCTIONS`).

Usage::

    expr = parse("AND({Status} = 'Done', {Count} > 3)", field_names)  # FormulaSyntaxError
    value = evaluate(expr, ctx)                                        # a formula value
    truthy(value)                                                      # Airtable's truth rule

Values inside the evaluator are Python values: ``None`` (blank), ``str``,
``int``/``float``, ``bool``, timezone-aware ``datetime`` and ``list`` (for
multiple selects, links and lookups). Errors that Airtable shows as
``#ERROR!`` raise :class:`FormulaEvalError`; a filter treats them as false.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Protocol, TypeAlias

Value: TypeAlias = "str | int | float | bool | datetime | list[Value] | None"


class FormulaSyntaxError(ValueError):
    """The formula text cannot be parsed, or names an unknown field or function."""


class FormulaEvalError(ValueError):
    """Evaluation failed the way Airtable shows as ``#ERROR!`` (e.g. text in arithmetic)."""


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "num" "str" "field" "name" "op" "(" ")" "," "end"
    text: str
    pos: int
    value: object = None


_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">", "&", "+", "-", "*", "/")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_NUMERIC_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def tokenize(text: str) -> list[Token]:
    """Split formula text into tokens; raises :class:`FormulaSyntaxError`."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            value, i2 = _read_quoted(text, i, ch, ch)
            tokens.append(Token("str", text[i:i2], i, value))
            i = i2
        elif ch == "{":
            # pyairtable escapes "}" inside a name as "\}"; any other backslash is literal.
            value, i2 = _read_quoted(text, i, "{", "}", only_escape="}")
            if not value:
                raise FormulaSyntaxError(f"empty field reference at {i}")
            tokens.append(Token("field", text[i:i2], i, value))
            i = i2
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            raw = m.group(0)
            num: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("num", raw, i, num))
            i = m.end()
        elif ch.isalpha() or ch == "_":
            m = _NAME.match(text, i)
            assert m is not None
            tokens.append(Token("name", m.group(0), i, m.group(0)))
            i = m.end()
        elif ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token("op", op, i))
                    i += len(op)
                    break
            else:
                raise FormulaSyntaxError(f"unexpected character {ch!r} at {i}")
    tokens.append(Token("end", "", n))
    return tokens


def _read_quoted(text: str, start: int, open_ch: str, close_ch: str, only_escape: str | None = None) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if only_escape is None:
                out.append(_ESCAPES.get(nxt, nxt))
                i += 2
                continue
            if nxt in only_escape:
                out.append(nxt)
                i += 2
                continue
        if ch == close_ch:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise FormulaSyntaxError(f"unterminated {open_ch}...{close_ch} starting at {start}")


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class FieldRef:
    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg:
    operand: Node


Node: TypeAlias = "Literal | FieldRef | Call | BinOp | Neg"

# Precedence as in spreadsheets: comparison < concatenation < additive < multiplicative.
_BINARY_PRECEDENCE = {
    "=": 1, "!=": 1, "<>": 1, "<": 1, ">": 1, "<=": 1, ">=": 1,
    "&": 2,
    "+": 3, "-": 3,
    "*": 4, "/": 4,
}  # fmt: skip


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str) -> Token:
        tok = self.take()
        if tok.kind != kind:
            raise FormulaSyntaxError(f"expected {kind!r} at {tok.pos}, got {tok.text!r}")
        return tok

    def expression(self, min_prec: int = 1) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _BINARY_PRECEDENCE.get(tok.text) if tok.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            right = self.expression(prec + 1)
            left = BinOp("!=" if tok.text == "<>" else tok.text, left, right)

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in "+-":
            self.take()
            operand = self.unary()
            return Neg(operand) if tok.text == "-" else operand
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            assert isinstance(tok.value, (int, float, str))
            return Literal(tok.value)
        if tok.kind == "field":
            assert isinstance(tok.value, str)
            return FieldRef(tok.value)
        if tok.kind == "name":
            if self.peek().kind == "(":
                self.take()
                args: list[Node] = []
                if self.peek().kind != ")":
                    args.append(self.expression())
                    while self.peek().kind == ",":
                        self.take()
                        args.append(self.expression())
                self.expect(")")
                return Call(tok.text.upper(), tuple(args))
            return FieldRef(tok.text)  # a bare single-word field name
        if tok.kind == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        raise FormulaSyntaxError(f"unexpected {tok.text or 'end of formula'!r} at {tok.pos}")


def parse(text: str, field_names: Sequence[str] | None = None) -> Node:
    """Parse ``text`` into an AST.

    With ``field_names``, every referenced field must be among them and every
    function must be known, as Airtable checks before evaluating anything.
    Raises :class:`FormulaSyntaxError` with Airtable-like wording.
    """
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "end":
        raise FormulaSyntaxError("empty formula")
    node = parser.expression()
    if parser.peek().kind != "end":
        tok = parser.peek()
        raise FormulaSyntaxError(f"unexpected {tok.text!r} at {tok.pos}")
    unknown_functions = sorted({c.name for c in _walk(node) if isinstance(c, Call)} - FUNCTIONS.keys())
    if unknown_functions:
        raise FormulaSyntaxError("Unknown function names: " + ", ".join(unknown_functions))
    for call in (c for c in _walk(node) if isinstance(c, Call)):
        lo, hi = FUNCTIONS[call.name].arity
        if len(call.args) < lo or (hi is not None and len(call.args) > hi):
            raise FormulaSyntaxError(f"Wrong number of arguments to {call.name}")
    if field_names is not None:
        known = set(field_names)
        unknown = [r.name for r in _walk(node) if isinstance(r, FieldRef) and r.name not in known]
        if unknown:
            raise FormulaSyntaxError("Unknown field names: " + ", ".join(dict.fromkeys(unknown)))
    return node


def referenced_fields(node: Node) -> list[str]:
    """Names of the fields a formula reads, in order of first use."""
    return list(dict.fromkeys(r.name for r in _walk(node) if isinstance(r, FieldRef)))


def _walk(node: Node) -> list[Node]:
    out: list[Node] = [node]
    if isinstance(node, Call):
        for a in node.args:
            out.extend(_walk(a))
    elif isinstance(node, BinOp):
        out.extend(_walk(node.left))
        out.extend(_walk(node.right))
    elif isinstance(node, Neg):
        out.extend(_walk(node.operand))
    return out


# --------------------------------------------------------------------------- evaluation


class Context(Protocol):
    """What the evaluator needs from a record."""

    @property
    def record_id(self) -> str: ...

    @property
    def created_time(self) -> datetime: ...

    @property
    def last_modified_time(self) -> datetime: ...

    def field_value(self, name: str) -> Value:
        """The value of field ``name`` as a formula value (formula fields evaluated)."""
        ...


def evaluate(node: Node, ctx: Context) -> Value:
    """Evaluate ``node`` against one record; raises :class:`FormulaEvalError`."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, FieldRef):
        return ctx.field_value(node.name)
    if isinstance(node, Neg):
        return -to_number(evaluate(node.operand, ctx))
    if isinstance(node, BinOp):
        return _binary(node.op, evaluate(node.left, ctx), evaluate(node.right, ctx))
    fn = FUNCTIONS[node.name]
    if fn.lazy:
        return fn.impl(ctx, node.args)
    args = [evaluate(a, ctx) for a in node.args]
    return fn.impl(ctx, args)


def truthy(value: Value) -> bool:
    """Airtable's rule: blank, 0, "", FALSE, NaN and empty lists are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)):
        return value != 0 and not math.isnan(value)
    if isinstance(value, (str, list)):
        return len(value) > 0
    return True


def to_number(value: Value) -> int | float:
    """Numeric view of a value: blank is 0, TRUE is 1, numeric text is parsed."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        s = value.strip()
        if s == "":
            return 0
        # Only plain decimal text counts; Python's float() would also take "nan" and "inf".
        if not _NUMERIC_TEXT.fullmatch(s):
            raise FormulaEvalError(f"cannot use {value!r} as a number")
        f = float(s)
        return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f
    if isinstance(value, list):
        if len(value) == 1:
            return to_number(value[0])
        raise FormulaEvalError("cannot use a list as a number")
    raise FormulaEvalError(f"cannot use {type(value).__name__} as a number")


def to_text(value: Value) -> str:
    """Text view of a value, as ``&`` and text functions see it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list):
        return ", ".join(to_text(v) for v in value)
    return value


def format_datetime(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``, the API's datetime form."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _binary(op: str, a: Value, b: Value) -> Value:
    if op == "&":
        return to_text(a) + to_text(b)
    if op in ("+", "-", "*", "/"):
        if op in "+-" and isinstance(a, datetime) and isinstance(b, (int, float)):
            # Date plus a number of days works in Airtable; keep it for convenience.
            return a + timedelta(days=b if op == "+" else -b)
        x, y = to_number(a), to_number(b)
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if y == 0:
            raise FormulaEvalError("division by zero")
        result = x / y
        return int(result) if result.is_integer() and isinstance(x, int) and x % y == 0 else result
    return _compare(op, a, b)


def _compare(op: str, a: Value, b: Value) -> bool:
    if op in ("=", "!="):
        eq = _equal(a, b)
        return eq if op == "=" else not eq
    key_a, key_b = _ordering_keys(a, b)
    if op == "<":
        return bool(key_a < key_b)  # type: ignore[operator]
    if op == ">":
        return bool(key_a > key_b)  # type: ignore[operator]
    if op == "<=":
        return bool(key_a <= key_b)  # type: ignore[operator]
    return bool(key_a >= key_b)  # type: ignore[operator]


def _equal(a: Value, b: Value) -> bool:
    if a is None or b is None:
        other = b if a is None else a
        # Blank equals the empty value of whatever it is compared with: "", 0, FALSE.
        return other is None or (not truthy(other) and not isinstance(other, datetime))
    if isinstance(a, datetime) or isinstance(b, datetime):
        try:
            return _as_datetime(a) == _as_datetime(b)
        except FormulaEvalError:
            return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        # Number against text: Airtable compares numerically when the text is a number.
        try:
            return float(to_number(a)) == float(to_number(b))
        except FormulaEvalError:
            return to_text(a) == to_text(b)
    return to_text(a) == to_text(b)


def _ordering_keys(a: Value, b: Value) -> tuple[object, object]:
    if isinstance(a, datetime) or isinstance(b, datetime):
        if a is None or b is None:
            raise FormulaEvalError("cannot compare a date with blank")
        return _as_datetime(a), _as_datetime(b)
    numeric = (int, float, bool)
    if (isinstance(a, numeric) or isinstance(b, numeric) or a is None or b is None) and not (
        isinstance(a, str) and isinstance(b, str)
    ):
        try:
            return to_number(a), to_number(b)
        except FormulaEvalError:
            pass
    return to_text(a), to_text(b)


# --------------------------------------------------------------------------- dates


def parse_datetime(text: str, default_tz: timezone | None = None) -> datetime:
    """Parse an ISO 8601 date or datetime (``Z`` or offset allowed) into aware UTC.

    A value without an offset is taken in ``default_tz`` (UTC if None).
    Raises ``ValueError`` for anything else.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        d = date.fromisoformat(s)
        dt = datetime(d.year, d.month, d.day)
    else:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2})?", s):
            raise ValueError(f"not an ISO 8601 date: {text!r}")
        # Python 3.10's fromisoformat accepts at most 6 fraction digits and needs ":" in offsets.
        s = re.sub(r"\.(\d{6})\d+", r".\1", s)
        s = re.sub(r"\.(\d{1,5})(?=\D|$)", lambda m: "." + m.group(1).ljust(6, "0"), s)
        s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
        dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=default_tz or timezone.utc)
    return dt.astimezone(timezone.utc)


_MOMENT_TOKENS = [
    ("YYYY", r"(?P<Y>\d{4})"), ("MM", r"(?P<M>\d{2})"), ("M", r"(?P<M>\d{1,2})"),
    ("DD", r"(?P<D>\d{2})"), ("D", r"(?P<D>\d{1,2})"), ("HH", r"(?P<h>\d{2})"),
    ("H", r"(?P<h>\d{1,2})"), ("mm", r"(?P<m>\d{2})"), ("ss", r"(?P<s>\d{2})"),
]  # fmt: skip


def _parse_with_format(text: str, fmt: str) -> datetime:
    pattern, i = "", 0
    while i < len(fmt):
        for tok, rx in _MOMENT_TOKENS:
            if fmt.startswith(tok, i):
                pattern += rx
                i += len(tok)
                break
        else:
            pattern += re.escape(fmt[i])
            i += 1
    m = re.fullmatch(pattern, text.strip())
    if not m:
        raise ValueError(f"{text!r} does not match {fmt!r}")
    g = {k: int(v) for k, v in m.groupdict().items()}
    return datetime(
        g.get("Y", 1970), g.get("M", 1), g.get("D", 1), g.get("h", 0), g.get("m", 0), g.get("s", 0),
        tzinfo=timezone.utc,
    )  # fmt: skip


def _as_datetime(value: Value) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            raise FormulaEvalError(f"not a date: {value!r}") from None
    if isinstance(value, list) and len(value) == 1:
        return _as_datetime(value[0])
    raise FormulaEvalError(f"not a date: {value!r}")


_UNIT_ALIASES = {
    "milliseconds": "ms", "millisecond": "ms", "ms": "ms",
    "seconds": "s", "second": "s", "s": "s",
    "minutes": "m", "minute": "m", "m": "m",
    "hours": "h", "hour": "h", "h": "h",
    "days": "d", "day": "d", "d": "d",
    "weeks": "w", "week": "w", "w": "w",
    "months": "M", "month": "M", "M": "M",
    "quarters": "Q", "quarter": "Q", "Q": "Q",
    "years": "y", "year": "y", "y": "y",
}  # fmt: skip
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _unit(value: Value) -> str:
    text = to_text(value).strip()
    unit = _UNIT_ALIASES.get(text) or _UNIT_ALIASES.get(text.lower())
    if unit is None:
        raise FormulaEvalError(f"unknown unit {text!r}")
    return unit


def _month_index(dt: datetime) -> int:
    return dt.year * 12 + dt.month - 1


def _truncate(dt: datetime, unit: str) -> tuple[int, ...]:
    full = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond // 1000)
    depth = {"y": 1, "Q": 1, "M": 2, "w": 3, "d": 3, "h": 4, "m": 5, "s": 6, "ms": 7}[unit]
    if unit == "Q":
        return (dt.year, (dt.month - 1) // 3)
    if unit == "w":
        iso = dt.isocalendar()
        return (iso[0], iso[1])
    return full[:depth]


# --------------------------------------------------------------------------- functions


@dataclass(frozen=True)
class Function:
    impl: Callable[..., Value]
    arity: tuple[int, int | None]
    lazy: bool = False  # lazy functions receive (ctx, nodes) and evaluate what they need


def _if(ctx: Context, nodes: Sequence[Node]) -> Value:
    if truthy(evaluate(nodes[0], ctx)):
        return evaluate(nodes[1], ctx)
    return evaluate(nodes[2], ctx) if len(nodes) > 2 else None


def _and(ctx: Context, nodes: Sequence[Node]) -> Value:
    return all(truthy(evaluate(n, ctx)) for n in nodes)


def _or(ctx: Context, nodes: Sequence[Node]) -> Value:
    return any(truthy(evaluate(n, ctx)) for n in nodes)


def _switch(ctx: Context, nodes: Sequence[Node]) -> Value:
    subject = evaluate(nodes[0], ctx)
    rest = list(nodes[1:])
    while len(rest) >= 2:
        if _equal(subject, evaluate(rest[0], ctx)):
            return evaluate(rest[1], ctx)
        rest = rest[2:]
    return evaluate(rest[0], ctx) if rest else None


def _iserror(ctx: Context, nodes: Sequence[Node]) -> Value:
    try:
        value = evaluate(nodes[0], ctx)
    except FormulaEvalError:
        return True
    return isinstance(value, float) and math.isnan(value)


def _find(ctx: Context, a: list[Value], *, not_found: Value) -> Value:
    needle, hay = to_text(a[0]), to_text(a[1])
    start = max(int(to_number(a[2])) - 1, 0) if len(a) > 2 else 0
    if needle == "":
        return not_found
    idx = hay.find(needle, start)
    return idx + 1 if idx >= 0 else not_found


def _datetime_parse(ctx: Context, a: list[Value]) -> Value:
    if isinstance(a[0], datetime):
        return a[0]
    text = to_text(a[0])
    try:
        if len(a) > 1 and a[1] is not None and to_text(a[1]):
            return _parse_with_format(text, to_text(a[1]))
        return parse_datetime(text)
    except ValueError:
        raise FormulaEvalError(f"cannot parse {text!r} as a date") from None


def _datetime_diff(ctx: Context, a: list[Value]) -> Value:
    if a[0] is None or a[1] is None:
        # Airtable shows NaN for a difference involving an empty date.
        return math.nan
    d1, d2 = _as_datetime(a[0]), _as_datetime(a[1])
    unit = _unit(a[2]) if len(a) > 2 else "s"
    if unit in _UNIT_SECONDS:
        diff = (d1 - d2).total_seconds() / _UNIT_SECONDS[unit]
        return math.trunc(diff + (1e-9 if diff >= 0 else -1e-9))
    months = _month_index(d1) - _month_index(d2)
    # Whole months only: step back one if the day/time of d1 has not reached d2's.
    if months > 0 and (d1.day, d1.time()) < (d2.day, d2.time()):
        months -= 1
    elif months < 0 and (d1.day, d1.time()) > (d2.day, d2.time()):
        months += 1
    return {"M": months, "Q": math.trunc(months / 3), "y": math.trunc(months / 12)}[unit]


def _is_same(ctx: Context, a: list[Value]) -> Value:
    if a[0] is None or a[1] is None:
        return False
    d1, d2 = _as_datetime(a[0]), _as_datetime(a[1])
    unit = _unit(a[2]) if len(a) > 2 else "ms"
    return _truncate(d1, unit) == _truncate(d2, unit)


def _dateadd(ctx: Context, a: list[Value]) -> Value:
    d = _as_datetime(a[0])
    count = to_number(a[1])
    unit = _unit(a[2])
    if unit in _UNIT_SECONDS:
        return d + timedelta(seconds=count * _UNIT_SECONDS[unit])
    months = int(count) * {"M": 1, "Q": 3, "y": 12}[unit]
    idx = _month_index(d) + months
    year, month = divmod(idx, 12)
    day = d.day
    while True:
        try:
            return d.replace(year=year, month=month + 1, day=day)
        except ValueError:
            day -= 1


def _datetime_format(ctx: Context, a: list[Value]) -> Value:
    d = _as_datetime(a[0])
    fmt = to_text(a[1]) if len(a) > 1 else "YYYY-MM-DDTHH:mm:ss.SSSZ"
    out, i = "", 0
    table = [
        ("YYYY", f"{d.year:04d}"), ("MM", f"{d.month:02d}"), ("DD", f"{d.day:02d}"),
        ("HH", f"{d.hour:02d}"), ("mm", f"{d.minute:02d}"), ("ss", f"{d.second:02d}"),
        ("SSS", f"{d.microsecond // 1000:03d}"), ("M", str(d.month)), ("D", str(d.day)),
        ("Z", "+00:00"),
    ]  # fmt: skip
    while i < len(fmt):
        for tok, rep in table:
            if fmt.startswith(tok, i):
                out += rep
                i += len(tok)
                break
        else:
            out += fmt[i]
            i += 1
    return out


def _round(ctx: Context, a: list[Value]) -> Value:
    x, places = to_number(a[0]), int(to_number(a[1])) if len(a) > 1 else 0
    factor = 10**places
    # Half away from zero, like spreadsheets (Python's round() is banker's rounding).
    result = math.floor(abs(x) * factor + 0.5) / factor * (1 if x >= 0 else -1)
    return int(result) if places <= 0 else result


def _simple(fn: Callable[[list[Value]], Value]) -> Callable[[Context, list[Value]], Value]:
    return lambda ctx, a: fn(a)


def _num_list(a: list[Value]) -> list[int | float]:
    out: list[int | float] = []
    for v in a:
        if isinstance(v, list):
            out.extend(_num_list(v))
        elif v is not None and v != "":
            out.append(to_number(v))
    return out


FUNCTIONS: Mapping[str, Function] = {
    "TRUE": Function(_simple(lambda a: True), (0, 0)),
    "FALSE": Function(_simple(lambda a: False), (0, 0)),
    "BLANK": Function(_simple(lambda a: None), (0, 0)),
    "IF": Function(_if, (2, 3), lazy=True),
    "AND": Function(_and, (1, None), lazy=True),
    "OR": Function(_or, (1, None), lazy=True),
    "XOR": Function(_simple(lambda a: sum(truthy(v) for v in a) % 2 == 1), (1, None)),
    "NOT": Function(_simple(lambda a: not truthy(a[0])), (1, 1)),
    "SWITCH": Function(_switch, (2, None), lazy=True),
    "ISERROR": Function(_iserror, (1, 1), lazy=True),
    "RECORD_ID": Function(lambda ctx, a: ctx.record_id, (0, 0)),
    "CREATED_TIME": Function(lambda ctx, a: ctx.created_time, (0, 0)),
    "LAST_MODIFIED_TIME": Function(lambda ctx, a: ctx.last_modified_time, (0, None)),
    "NOW": Function(_simple(lambda a: datetime.now(timezone.utc)), (0, 0)),
    "TODAY": Function(
        _simple(lambda a: datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)),
        (0, 0),
    ),
    "FIND": Function(lambda ctx, a: _find(ctx, a, not_found=0), (2, 3)),
    # SEARCH differs from FIND only in returning blank when there is no match.
    "SEARCH": Function(lambda ctx, a: _find(ctx, a, not_found=None), (2, 3)),
    "LEN": Function(_simple(lambda a: len(to_text(a[0]))), (1, 1)),
    "LOWER": Function(_simple(lambda a: to_text(a[0]).lower()), (1, 1)),
    "UPPER": Function(_simple(lambda a: to_text(a[0]).upper()), (1, 1)),
    "TRIM": Function(_simple(lambda a: to_text(a[0]).strip()), (1, 1)),
    "CONCATENATE": Function(_simple(lambda a: "".join(to_text(v) for v in a)), (1, None)),
    "LEFT": Function(_simple(lambda a: to_text(a[0])[: int(to_number(a[1]))]), (2, 2)),
    "RIGHT": Function(_simple(lambda a: to_text(a[0])[-int(to_number(a[1])) :] if to_number(a[1]) else ""), (2, 2)),
    "MID": Function(
        _simple(lambda a: to_text(a[0])[int(to_number(a[1])) - 1 : int(to_number(a[1])) - 1 + int(to_number(a[2]))]),
        (3, 3),
    ),
    "SUBSTITUTE": Function(_simple(lambda a: to_text(a[0]).replace(to_text(a[1]), to_text(a[2]))), (3, 4)),
    "T": Function(_simple(lambda a: a[0] if isinstance(a[0], str) else None), (1, 1)),
    "VALUE": Function(_simple(lambda a: to_number(to_text(a[0]))), (1, 1)),
    "ABS": Function(_simple(lambda a: abs(to_number(a[0]))), (1, 1)),
    "INT": Function(_simple(lambda a: math.floor(to_number(a[0]))), (1, 1)),
    "ROUND": Function(_round, (1, 2)),
    "MIN": Function(_simple(lambda a: min(_num_list(a), default=0)), (1, None)),
    "MAX": Function(_simple(lambda a: max(_num_list(a), default=0)), (1, None)),
    "SUM": Function(_simple(lambda a: sum(_num_list(a))), (1, None)),
    "DATETIME_PARSE": Function(_datetime_parse, (1, 3)),
    "DATETIME_DIFF": Function(_datetime_diff, (2, 3)),
    "DATETIME_FORMAT": Function(_datetime_format, (1, 2)),
    "DATEADD": Function(_dateadd, (3, 3)),
    "IS_SAME": Function(_is_same, (2, 3)),
    "IS_BEFORE": Function(_simple(lambda a: _as_datetime(a[0]) < _as_datetime(a[1])), (2, 2)),
    "IS_AFTER": Function(_simple(lambda a: _as_datetime(a[0]) > _as_datetime(a[1])), (2, 2)),
}
"""The supported functions; anything else is an ``INVALID_FILTER_BY_FORMULA`` error."""
