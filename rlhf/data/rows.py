"""Raw rows from local `.jsonl` / `.parquet` files, each tagged with where it came from, plus field checks.

Every error names its origin as `"{file}, line {n}"` (JSON Lines, 1-based, as an editor shows it) or
`"{file}, row {i}"` (Parquet, 0-based table index), and field errors read
`"{source}, field '{name}': {problem}"`. Every reader of the repo goes through `read_rows`, so the file rules are
the same everywhere: UTF-8 (a BOM is fine; the first bad byte is named), `.jsonl.gz` read directly, no duplicate
keys, NaN/Infinity or unpaired surrogates, no empty file. Only the field checks the parsers share live here
(non-empty strings, zero-width-only counts as empty; bounded integers); schemas belong to `rlhf.data.helpsteer2`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GZIP_MAGIC, BOM = b"\x1f\x8b", b"\xef\xbb\xbf"
SURROGATE = re.compile("[\ud800-\udfff]")
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))  # zero-width characters str.strip keeps


def is_blank(text: str) -> bool:
    """True for text that is empty, whitespace (any Unicode space) or zero-width characters only."""
    return not text.translate(INVISIBLE).strip()


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
    """Read every record of a `.jsonl`, `.jsonl.gz` or `.parquet` file (the rules every reader of the repo shares).

    JSON Lines must be UTF-8 (a leading BOM is accepted), one JSON object per line, without duplicate keys, NaN or
    Infinity literals, or unpaired surrogates in strings. A file with no rows is an error.

    Args:
        path: the file.
        bad_lines: if given, unparseable JSON Lines lines are appended here and skipped instead of raised.

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
        IsADirectoryError: the path is a directory.
        ValueError: the extension is not `.jsonl`, `.jsonl.gz` or `.parquet`; a gzip file named `.jsonl`.
        BadRowError: a line is not UTF-8, not valid JSON or not a JSON object; the file has no rows.
    """
    path = Path(path)
    name = path.name.lower()
    gz = name.endswith(".jsonl.gz")
    suffix = ".jsonl" if gz else path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"{path}: unknown file type {path.suffix.lower() or '(none)'!r}; expected .jsonl or .parquet")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a {suffix} file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = _read_jsonl(path, _jsonl_bytes(path, gz), bad_lines) if suffix == ".jsonl" else _read_parquet(path)
    if not rows and not bad_lines:
        raise BadRowError(f"{path}: empty file (no rows)")
    return rows


def _jsonl_bytes(path: Path, gz: bool) -> bytes:
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        if not gz:
            raise ValueError(f"{path}: is gzip-compressed; name it {path.name}.gz (read directly) or decompress it")
        import gzip

        data = gzip.decompress(data)
    return data[len(BOM):] if data.startswith(BOM) else data


def _read_jsonl(path: Path, data: bytes, bad_lines: list[BadRowError] | None) -> list[Row]:
    rows: list[Row] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        source = f"{path}, line {number}"
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadRowError(f"{source}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            rows.append(_decode_line(source, line))
        except BadRowError as e:
            if bad_lines is None:
                raise
            bad_lines.append(e)
    return rows


def _unique_keys(source: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise BadRowError(f"{source}: duplicate key '{key}' (JSON keeps only the last; fix the row)")
            out[key] = value
        return out

    return hook


def _no_constant(source: str):
    def hook(name: str) -> Any:
        raise BadRowError(f"{source}: {name} is not valid JSON (NaN and Infinity are not numbers JSON allows)")

    return hook


def _decode_line(source: str, line: str) -> Row:
    try:
        data = json.loads(line, object_pairs_hook=_unique_keys(source), parse_constant=_no_constant(source))
    except json.JSONDecodeError as e:
        hint = "; JSON Lines needs one JSON object per line (is this a pretty-printed JSON file?)" if line.strip() in ("[", "{") or line.lstrip().startswith("[") else ""
        raise BadRowError(f"{source}: invalid JSON ({e.msg} at column {e.colno}){hint}") from None
    if isinstance(data, list):
        raise BadRowError(f"{source}: expected a JSON object, got a list (JSON Lines needs one object per line, not a JSON array)")
    if not isinstance(data, dict):
        raise BadRowError(f"{source}: expected a JSON object, got {_type_name(data)}")
    _check_strings(source, data)
    return Row(source, data)


def _check_strings(source: str, value: Any, field: str | None = None) -> None:
    """Unpaired surrogates (`"\\ud800"`) are valid JSON escapes but not text: nothing downstream can encode them."""
    if isinstance(value, str):
        if SURROGATE.search(value):
            raise BadRowError(f"{source}, field '{field}': unpaired surrogate {SURROGATE.search(value)[0].encode('unicode_escape').decode()} in text (not valid Unicode)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(source, item, key if field is None else f"{field}.{key}")
    elif isinstance(value, list):
        for k, item in enumerate(value):
            _check_strings(source, item, f"{field}[{k}]")


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq  # lazy: only Parquet users pay for it

    try:
        records = pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001  (pyarrow raises ArrowInvalid and friends; the message says which file)
        raise BadRowError(f"{path}: not a readable Parquet file ({e})") from None
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
    if is_blank(value):
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
