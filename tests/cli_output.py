"""Shared by the config tests: run an entry point with --print_config and return what it printed."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable

import pytest


def printed_config(main: Callable, config: Path) -> str:
    """`main(["fit", "--config", config, "--print_config"])` must exit cleanly; returns its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    return out.getvalue()
