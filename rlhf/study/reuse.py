"""Run one training command of the study once: a finished run trained with the same arguments is reused.

A stopped study (or one split over several processes by seed) resumes where it stopped. `study_run.json`, written
after the fit, holds the command's arguments (plus any extra key, e.g. the ExPO α of an RM the run depends on) and its
training seconds; the run is reused only when they match and its checkpoint exists. Left out: detecting that a run's
inputs changed on disk under the same arguments (`--retrain` trains everything again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlhf.atomic_write import write_json


def train_once(main: Callable[[list[str]], Any], argv: list[str], run_dir: Path, retrain: bool = False, extra: dict | None = None) -> float | None:
    """`main(argv)` unless `run_dir` holds a finished run of the same `argv` and `extra`. Returns the reused run's
    training seconds, or None when it trained now."""
    record, key = run_dir / "study_run.json", {"argv": list(argv), "extra": extra or {}}
    if not retrain and record.is_file() and (run_dir / "checkpoint" / "model.safetensors").is_file():
        done = json.loads(record.read_text())
        if {"argv": done.get("argv"), "extra": done.get("extra", {})} == key:
            print(f"[study] reusing {run_dir} (same arguments; --retrain trains it again)", flush=True)
            return float(done["seconds"])
    record.unlink(missing_ok=True)
    t0 = time.perf_counter()
    main(argv)
    write_json(record, key | {"seconds": round(time.perf_counter() - t0, 1)})
    return None
