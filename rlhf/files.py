"""Atomic writes for every file the repo writes, and the start-of-run checks that an output can be written at all.

A file is written to a temporary name in its own directory (same filesystem) and moved over the target with
`os.replace`, so a crash, a full disk or an exception leaves either the old file or the new one, never half of
one, and the temporary file is removed on error. Directories (exports) are built in a temporary sibling and
swapped in. `check_writable` and `refuse_overwriting_input` run before any model loads. JSON is written with
`allow_nan=False`: NaN and Infinity are not JSON. Left out: fsync (a power cut may still lose the newest file).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block ends, removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; give the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_with(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` (e.g. a library's save function) and move the result to `path` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


@contextmanager
def open_atomic(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """`open()` for writing that only replaces `path` once the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        yield f


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """`obj` as JSON (a ValueError, and no file written, if it holds NaN or Infinity)."""
    return write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def json_line(obj: Any) -> str:
    """One JSON Lines line; NaN and Infinity are refused, as they are not JSON."""
    return json.dumps(obj, allow_nan=False) + "\n"


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary directory beside `path` to fill; swapped in for `path` (replacing an old one) when the block ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if path.exists():
            old = path.with_name(f"{tmp.name}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(path: str | Path, kind: str = "file") -> None:
    """Fail now, before any model loads, if `path` (a `kind` "file" or "directory" to be written) cannot be written.

    Probes the nearest existing directory the write would need (creating a temporary file there and removing it),
    so a read-only mount, a parent that is a file or missing permissions all show up in a second, not after the work.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory (expected a file to write)")
    if kind == "directory" and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: exists and is not a directory")
    where = path if kind == "directory" else path.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise NotADirectoryError(f"{path}: cannot be written, {where} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".write-check-")
    except OSError as e:
        raise PermissionError(f"{path}: cannot be written ({where}: {e.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def refuse_overwriting_input(output: str | Path, *inputs: str | Path) -> None:
    """An output that is one of the inputs would destroy it mid-run: refuse."""
    out = Path(output)
    for source in inputs:
        source = Path(source)
        if out.resolve() == source.resolve() or (out.exists() and source.exists() and os.path.samefile(out, source)):
            raise ValueError(f"{output}: is also the input {source}; write the output elsewhere (the input would be lost)")

def refuse_to_replace(path: str | Path, overwrite: bool, what: str = "results") -> None:
    """Raise FileExistsError if `path` exists (a non-empty directory, or a file) and `overwrite` is false."""
    path = Path(path)
    exists = any(path.iterdir()) if path.is_dir() else path.exists()
    if exists and not overwrite:
        raise FileExistsError(f"{path} already holds {what}; give another output path, or --overwrite to replace them")
