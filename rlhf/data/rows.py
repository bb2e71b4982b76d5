"""Raw rows from local `.jsonl` / `.parquet` files, each tagged with where it came from, plus field checks.

Every error names its origin as `"{file}, line {n}"` (JSON Lines, 1-based, as an editor shows it) or
`"{file}, row {i}"` (Parquet, 0-based table index), and field errors read
`"{source}, field '{name}': {problem}"`. Only the checks the HelpSteer2 parsers need live here (non-empty
strings, bounded integers); schemas belong to `rlhf.data.helpsteer2`. No Hub access here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BadRowError(ValueError):
    """A row that cannot be parsed; the message starts with the row's source (file and line/row)."""


@dataclass(frozen=True)
class Row:
    """One raw record.

    Attributes:
        source: where it came from, e.g. "data/x.jsonl, line 12" or "hub:nvidia/HelpSteer2/preference, row 17".
        data: the decoded JSON object / Parquet record.
    """

    source: str
    data: dict[str, Any]


def read_rows(path: str | Path, bad_lines: list[BadRowError] | None = None) -> list[Row]:
    """Read every record of a `.jsonl` or `.parquet` file.

    Args:
        path: the file.
        bad_lines: if given, unparseable JSON Lines lines are appended here and skipped instead of raised.

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
        ValueError: the extension is neither `.jsonl` nor `.parquet`.
        BadRowError: a JSON Lines line is not valid JSON or not a JSON object.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"{path}: unknown file type {suffix or '(none)'!r}; expected .jsonl or .parquet")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return _read_jsonl(path, bad_lines) if suffix == ".jsonl" else _read_parquet(path)


def _read_jsonl(path: Path, bad_lines: list[BadRowError] | None) -> list[Row]:
    rows: list[Row] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(_decode_line(f"{path}, line {number}", line))
            except BadRowError as e:
                if bad_lines is None:
                    raise
                bad_lines.append(e)
    return rows


def _decode_line(source: str, line: str) -> Row:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadRowError(f"{source}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict):
        raise BadRowError(f"{source}: expected a JSON object, got {_type_name(data)}")
    return Row(source, data)


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq  # lazy: only Parquet users pay for it

    records = pq.read_table(path).to_pylist()
    return [Row(f"{path}, row {i}", record) for i, record in enumerate(records)]


def _type_name(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a bool", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def field_error(row: Row, name: str, problem: str) -> BadRowError:
    """The error for field `name` of `row`: `"{row.source}, field '{name}': {problem}"`."""
    return BadRowError(f"{row.source}, field '{name}': {problem}")


def has_field(row: Row, name: str) -> bool:
    """True if `name` is present and not null (Parquet/Hub tables store absent values as null)."""
    return row.data.get(name) is not None


def require_field(row: Row, name: str) -> Any:
    """The value of `name`; a missing or null field is a BadRowError."""
    if not has_field(row, name):
        raise field_error(row, name, "missing")
    return row.data[name]


def require_text(row: Row, name: str) -> str:
    """A non-empty string field; whitespace-only counts as empty."""
    value = require_field(row, name)
    if not isinstance(value, str):
        raise field_error(row, name, f"expected a non-empty string, got {_type_name(value)}")
    if not value.strip():
        raise field_error(row, name, "expected a non-empty string, got an empty or whitespace-only string")
    return value


def check_int(row: Row, name: str, value: object, low: int, high: int, extra: tuple[int, ...] = ()) -> int:
    """`value` as an int in `low..high` (or one of `extra`); bools and floats (even 2.0) are rejected."""
    allowed = f"{low}..{high}" + "".join(f" or {x}" for x in extra)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise field_error(row, name, f"expected an integer in {allowed}, got {_type_name(value)} {value!r}")
    if isinstance(value, float):
        raise field_error(row, name, f"expected an integer in {allowed}, got non-integer {value!r}")
    if not (low <= value <= high or value in extra):
        raise field_error(row, name, f"expected an integer in {allowed}, got {value}")
    return int(value)


def require_int(row: Row, name: str, low: int, high: int) -> int:
    """A required integer field in `low..high` (see `check_int`)."""
    return check_int(row, name, require_field(row, name), low, high)


def require_list(row: Row, name: str) -> list[Any]:
    """A required non-empty list field."""
    value = require_field(row, name)
    if not isinstance(value, list):
        raise field_error(row, name, f"expected a non-empty list, got {_type_name(value)}")
    if not value:
        raise field_error(row, name, "expected a non-empty list, got an empty list")
    return value
