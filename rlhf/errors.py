"""Expected errors as one line: every command (`train.py`, `align.py`, `dpo.py`, each `python -m rlhf.*`) runs its
`main` through `run_main`, which prints an expected error as `error: <message>` on stderr and exits with status 1.

Expected: a missing or unreadable file (`OSError`), a checkpoint that is unsafe to load (`UnpicklingError`), and the
repo's own `raise` of a `ValueError`, `TypeError`, `KeyError` or `FloatingPointError` (bad data, a wrong checkpoint, a
bad option). Anything else (a bug, an error deep inside a library) keeps its traceback, and so does every error with
`--traceback` on the command line or `RLHF_TRACEBACK=1` in the environment. Parse errors (`ArgumentParser` here, the
LightningCLI parser in `rlhf.cli`) are one `error: <message>` line too, and keep argparse's exit status 2.
"""

from __future__ import annotations

import argparse
import linecache
import os
import pickle
import sys
from pathlib import Path
from typing import Callable, Sequence

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "RLHF_TRACEBACK"
_REPO = Path(__file__).resolve().parents[1]
_OWN_RAISES = (ValueError, TypeError, KeyError, FloatingPointError)


def is_expected(error: BaseException) -> bool:
    """Whether `error` is a user's mistake worth one line rather than a bug worth a traceback."""
    if isinstance(error, (OSError, pickle.UnpicklingError)):
        return True
    if not isinstance(error, _OWN_RAISES):
        return False
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    file = Path(tb.tb_frame.f_code.co_filename)
    own = _REPO in file.parents and ".venv" not in file.parts
    return own and linecache.getline(str(file), tb.tb_lineno).lstrip().startswith("raise")


def one_line(error: BaseException) -> str:
    """The error's message with every run of whitespace collapsed (KeyError's quotes dropped)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else error
    return " ".join(str(text).split()) or type(error).__name__


def run_main(main: Callable[[list[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run `main(argv)` as a command: expected errors become `error: <message>`, exit status 1.

    Without `argv`, `main` reads `sys.argv` itself (LightningCLI warns when given both), less `--traceback`."""
    given = list(sys.argv[1:] if argv is None else argv)
    show = TRACEBACK_FLAG in given or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
    if argv is None:
        sys.argv[1:] = [a for a in given if a != TRACEBACK_FLAG]
    try:
        main(None if argv is None else [a for a in given if a != TRACEBACK_FLAG])
    except Exception as e:  # noqa: BLE001  (re-raised unless expected)
        if show or not is_expected(e):
            raise
        sys.stderr.write(f"error: {one_line(e)}\n")
        raise SystemExit(1) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line parse error (`error: <message> (see --help)`, exit status 2) instead of usage + error."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"error: {' '.join(message.split())} (see {self.prog} --help)\n")
        raise SystemExit(2)
