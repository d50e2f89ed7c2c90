"""Reading a seed: a CSV file of the project, typed by its design, every value exact.

The format is RFC 4180: comma-separated, fields that hold a comma, a quote or a line break
are quoted with ``"`` (a quote inside doubled), UTF-8 (a byte-order mark is ignored), lines
ending in ``\\n`` or ``\\r\\n``, and a header row naming the columns. An empty field with no
quotes is NULL; a quoted empty field (``""``) is the empty string, which only text columns
take. Values are never trimmed or guessed at: each is parsed by the design type of its
column (:func:`converter`), and a value the type cannot hold exactly is an error naming the
file, the line and the column, never a rounding. Timestamps keep microseconds;
``timestamptz`` values must carry their offset (``Z`` or ``+01:00``).

The parser is this module's own, not ``pyarrow.csv``: it knows the physical line each
record starts on (a quoted field may span lines) and whether an empty field was quoted,
and both are needed to say where a bad value is and to tell NULL from the empty string.
Seeds are small (reference data written by hand), so a Python parser is fast enough:
about 300,000 fields a second. pyarrow is imported only to build the typed table.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.design.types import SqlType
from conveyor.errors import Location, UserError, did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa

#: one field and what ends it: a quoted field (group 1), an unquoted one (group 2), then the separator
_FIELD = re.compile(r'(?:"((?:[^"]|"")*)"|([^,"\r\n]*))(,|\r\n|\n|\r|$)')
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_FLOAT = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.(\d+))?)?")
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.(\d+))?)?)(Z|[+-]\d{2}(?::?\d{2})?)?")
_INT_RANGES = {
    "tinyint": (-(2**7), 2**7 - 1),
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
    "utinyint": (0, 2**8 - 1),
    "usmallint": (0, 2**16 - 1),
    "uinteger": (0, 2**32 - 1),
    "ubigint": (0, 2**64 - 1),
}
_TEXT_TYPES = ("text", "varchar", "char")
_EXACT = Context(prec=200)


class SeedError(UserError):
    """A seed's CSV does not match its design, or a value its column's type cannot hold exactly."""

    code = "seed-csv"


@dataclass(frozen=True)
class SeedColumn:
    """A column of the design: its name, type, and whether it may hold NULL."""

    name: str
    type: SqlType
    not_null: bool = False


@dataclass(frozen=True)
class Record:
    """One row of the CSV: the line it starts on and its fields (None: an empty unquoted field)."""

    line: int
    fields: list[str | None]


def digest(data: bytes) -> str:
    """The content hash a seed's extract records (``sha256:<hex>``)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def records(text: str, display: str) -> Iterator[Record]:
    """The records of CSV ``text``, each with the line it starts on; malformed quoting is a SeedError.

    A line without a quote or a carriage return is split at its commas; any other record is
    read field by field (a quoted field may hold commas, quotes and line breaks).
    """
    pos, line, end = 0, 1, len(text)
    while pos < end:
        stop = text.find("\n", pos)
        stop = end if stop < 0 else stop
        plain_line = text[pos : stop - 1 if stop > pos and text[stop - 1] == "\r" else stop]
        if '"' not in plain_line and "\r" not in plain_line:
            yield Record(line, [field or None for field in plain_line.split(",")])
            pos, line = stop + 1, line + 1
            continue
        start_line, fields = line, []
        while True:
            match = _FIELD.match(text, pos)
            if match is None:
                raise SeedError(
                    "a quote in the middle of an unquoted field, text after a closing quote, or a quote that "
                    "never closes.",
                    location=Location(display, line),
                    hint='Quote the whole field and double each quote inside it: "say ""hi""".',
                )
            quoted, plain, sep = match.groups()
            if quoted is not None:
                line += quoted.count("\n") + quoted.count("\r") - quoted.count("\r\n")
                fields.append(quoted.replace('""', '"'))
            else:
                fields.append(plain or None)
            pos = match.end()
            if sep != ",":
                if sep:
                    line += 1
                break
        yield Record(start_line, fields)


def converter(sql_type: SqlType) -> Callable[[str], Any]:
    """A function that parses one CSV field (not empty) as ``sql_type`` exactly, or raises ValueError."""
    if sql_type.is_array:
        raise ValueError(f"array columns ({sql_type}) cannot be read from a CSV seed")
    name = sql_type.name
    if name == "boolean":
        return _boolean
    if name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        return lambda text: _integer(text, low, high, name)
    if name == "decimal":
        assert sql_type.precision is not None
        return lambda text: _decimal(text, sql_type.precision or 38, sql_type.scale or 0)
    if name in ("real", "double"):
        return _float
    if name in ("varchar", "char"):
        limit = sql_type.precision
        return lambda text: _limited(text, limit, str(sql_type))
    if name == "text":
        return str
    if name == "json":
        return _json
    if name == "date":
        return _date
    if name == "time":
        return _time
    if name == "timestamp":
        return lambda text: _timestamp(text, zoned=False)
    if name == "timestamptz":
        return lambda text: _timestamp(text, zoned=True)
    if name == "uuid":
        return lambda text: uuid.UUID(text).bytes
    if name == "bytes":
        return _bytes
    raise ValueError(f"type {sql_type} cannot be read from a CSV seed")


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(f'"{text}" is not a boolean: write true or false')


def _integer(text: str, low: int, high: int, name: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f'"{text}" is not an integer')
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{text} is out of the range of {name} ({low} to {high})")
    return value


def _decimal(text: str, precision: int, scale: int) -> Decimal:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f'"{text}" is not a decimal number (digits, an optional sign and point, no exponent)')
    value = Decimal(text)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    places = -exponent
    while exponent < -scale and digits and digits[-1] == 0:  # trailing zeros lose nothing
        digits, exponent = digits[:-1], exponent + 1
    if exponent < -scale:
        raise ValueError(
            f"{text} has {places} decimal places but the column is decimal({precision},{scale}); "
            "it is not rounded: fix the value or widen the scale in the design"
        )
    if len(digits) + exponent > precision - scale:
        raise ValueError(f"{text} has more digits before the point than decimal({precision},{scale}) holds")
    return value.quantize(Decimal(1).scaleb(-scale), context=_EXACT)


def _float(text: str) -> float:
    if not _FLOAT.fullmatch(text):
        raise ValueError(f'"{text}" is not a number')
    return float(text)


def _limited(text: str, limit: int | None, name: str) -> str:
    if limit is not None and len(text) > limit:
        raise ValueError(f"the value has {len(text)} characters, more than {name} holds")
    return text


def _json(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at character {exc.pos + 1}") from None
    return text


def _date(text: str) -> date:
    if not _DATE.fullmatch(text):
        raise ValueError(f'"{text}" is not a date: write YYYY-MM-DD')
    return date.fromisoformat(text)


def _fraction(digits: str | None, text: str) -> None:
    if digits is not None and len(digits) > 6:
        raise ValueError(f'"{text}" has more than 6 fractional digits; times keep microseconds, not less')


def _time(text: str) -> time:
    match = _TIME.fullmatch(text)
    if not match:
        raise ValueError(f'"{text}" is not a time: write HH:MM:SS[.ffffff]')
    _fraction(match.group(1), text)
    return time.fromisoformat(text)


def _timestamp(text: str, *, zoned: bool) -> datetime:
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        form = "YYYY-MM-DD HH:MM:SS[.ffffff]" + ("+HH:MM" if zoned else "")
        raise ValueError(f'"{text}" is not a timestamp: write {form}')
    _fraction(match.group(3), text)
    offset = match.group(4)
    if zoned and offset is None:
        raise ValueError(f'"{text}" has no UTC offset, which a timestamptz value needs: add Z or e.g. +02:00')
    if not zoned and offset is not None:
        raise ValueError(f'"{text}" has a UTC offset but the column is a timestamp without time zone')
    return datetime.fromisoformat(text)


def _bytes(text: str) -> bytes:
    if not text.startswith("\\x"):
        raise ValueError(r"bytes are written in hex after \x, e.g. \x00ff")
    return bytes.fromhex(text[2:])


def read_seed(path: Path, display: str, columns: Sequence[SeedColumn], *, check_not_null: bool = True) -> pa.Table:
    """The CSV at ``path`` as an Arrow table with exactly ``columns`` (in that order, their Arrow types).

    ``display`` names the file in errors. Raises :class:`SeedError` at the first problem: a
    header that does not match the design, a malformed record, or a value its column cannot
    hold exactly (``check_not_null``: also a NULL in a ``not_null`` column).
    """
    return parse_seed(read_bytes(path, display), display, columns, check_not_null=check_not_null)


def read_bytes(path: Path, display: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SeedError(
            "the seed's CSV file does not exist.",
            location=Location(display),
            hint="Create it with a header row naming the design's columns, or fix the design's source_table.",
            code="seed-missing",
        ) from None
    except OSError as exc:
        why = exc.strerror or exc
        raise SeedError(f"cannot read the seed's CSV file: {why}.", location=Location(display)) from None


def decode(data: bytes, display: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SeedError(
            "the CSV file is not UTF-8 text.", location=Location(display, line), hint="Save it as UTF-8."
        ) from None


def header(data: bytes, display: str) -> tuple[list[str], Iterator[Record]]:
    """The header's column names and an iterator over the remaining records."""
    rows = records(decode(data, display), display)
    first = next(rows, None)
    if first is None:
        raise SeedError("the CSV file is empty; a seed needs a header row.", location=Location(display, 1))
    names: list[str] = []
    for index, name in enumerate(first.fields, start=1):
        if not name:
            raise SeedError(f"column {index} of the header has no name.", location=Location(display, first.line))
        if name in names:
            raise SeedError(f'the header names column "{name}" twice.', location=Location(display, first.line))
        names.append(name)
    return names, rows


def parse_seed(data: bytes, display: str, columns: Sequence[SeedColumn], *, check_not_null: bool = True) -> pa.Table:
    """:func:`read_seed` of the file's bytes (without cyclic garbage collection: every object made stays alive)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        return _parse_seed(data, display, columns, check_not_null)
    finally:
        if was_on:
            gc.enable()


def _parse_seed(data: bytes, display: str, columns: Sequence[SeedColumn], check_not_null: bool) -> pa.Table:
    import pyarrow as pa

    names, rows = header(data, display)
    wanted = [c.name for c in columns]
    extra = [n for n in names if n not in wanted]
    missing = [n for n in wanted if n not in names]
    if extra or missing:
        parts = []
        if extra:
            parts.append("the header has column(s) the design lacks: " + ", ".join(f'"{n}"' for n in extra))
        if missing:
            parts.append("the design's column(s) missing from the header: " + ", ".join(f'"{n}"' for n in missing))
        guess = did_you_mean(extra[0], missing) if extra and missing else ""
        raise SeedError(
            "; ".join(parts) + "." + guess,
            location=Location(display, 1),
            hint="The header must name exactly the design's columns (any order); "
            "add or rename them in the CSV or in the design (skipped columns of the design may be left out).",
            code="seed-header",
        )
    positions = [names.index(c.name) for c in columns]
    parsers = []
    for column in columns:
        try:
            parsers.append(converter(column.type))
        except ValueError as exc:
            raise SeedError(f'column "{column.name}": {exc}.', location=Location(display, 1)) from None
    width = len(names)
    kept: list[Record] = []
    for record in rows:
        if len(record.fields) != width:
            if len(record.fields) == 1 and record.fields[0] is None:
                continue  # a blank line
            raise SeedError(
                f"the record has {len(record.fields)} field(s) but the header names {width} column(s).",
                location=Location(display, record.line),
                hint="Quote fields that hold a comma.",
            )
        kept.append(record)
    values: list[list[Any]] = []
    problems: list[SeedError] = []
    for column, position, parse in zip(columns, positions, parsers, strict=True):
        converted, problem = _convert(kept, position, column, parse, display, check_not_null)
        values.append(converted)
        if problem is not None:
            problems.append(problem)
    if problems:  # the first in the file
        raise min(problems, key=lambda p: (p.location.line or 0) if p.location else 0)
    arrays = [_array(vals, column.type) for vals, column in zip(values, columns, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c.name, c.type.arrow) for c in columns]))


def _convert(
    kept: list[Record],
    position: int,
    column: SeedColumn,
    parse: Callable[[str], Any],
    display: str,
    check_not_null: bool,
) -> tuple[list[Any], SeedError | None]:
    """One column's values, or the first problem among them (column by column is faster than row by row)."""
    texts = [record.fields[position] for record in kept]
    textual = column.type.name in _TEXT_TYPES and column.type.precision is None
    if textual and not (check_not_null and column.not_null):
        return texts, None  # text as written, NULL as NULL
    converted: list[Any] = []
    append = converted.append
    for index, text in enumerate(texts):
        if text is None:
            if check_not_null and column.not_null:
                why = "the field is empty (NULL) but the column is not_null"
                return converted, _bad(display, kept[index].line, column, why)
            append(None)
        elif text == "" and column.type.name not in _TEXT_TYPES:
            why = f'"" (an empty string) is not a {column.type}; leave the field empty, without quotes, for NULL'
            return converted, _bad(display, kept[index].line, column, why)
        else:
            try:
                append(parse(text))
            except (ValueError, InvalidOperation, OverflowError) as exc:
                return converted, _bad(display, kept[index].line, column, str(exc))
    return converted, None


def _array(values: list[Any], sql_type: SqlType) -> pa.Array:
    import pyarrow as pa

    arrow = sql_type.arrow
    if isinstance(arrow, pa.ExtensionType):
        storage = pa.array(values, arrow.storage_type)
        return pa.ExtensionArray.from_storage(arrow, storage)
    return pa.array(values, arrow)


def _bad(display: str, line: int, column: SeedColumn, why: str) -> SeedError:
    return SeedError(f'column "{column.name}": {why}.', location=Location(display, line))
