"""Run one training command of the study once: a finished run trained with the same arguments and inputs is reused.

A stopped study (or one split over several processes by seed) resumes where it stopped. `study_run.json`, written
after the fit, holds the command's arguments, the sha256 of every input they name (a file, or a checkpoint
directory's model.safetensors; paths inside the run's own directory are outputs and skipped) and its training
seconds; the run is reused only when all of them match and its checkpoint exists, so an edited config, regenerated
data or a retrained init/reward checkpoint (e.g. ExPO at another α) trains it again. Left out: files that a config
names inside itself (only the config file's own bytes are compared).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlhf.files import write_json


def _inputs(argv: list[str], run_dir: Path) -> dict[str, str]:
    """sha256 of each existing file or checkpoint (its model.safetensors) that an argument names, outside `run_dir`."""
    digests = {}
    for arg in argv:
        path = Path(arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg)
        if path.is_dir():
            path = path / "model.safetensors"
        if path.is_file() and run_dir.resolve() not in path.resolve().parents:
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def train_once(main: Callable[[list[str]], Any], argv: list[str], run_dir: Path, retrain: bool = False) -> float | None:
    """`main(argv)` unless `run_dir` holds a finished run of the same `argv` and inputs. Returns the reused run's
    training seconds, or None when it trained now."""
    record, key = run_dir / "study_run.json", {"argv": list(argv), "inputs": _inputs(argv, run_dir)}
    if not retrain and record.is_file() and (run_dir / "checkpoint" / "model.safetensors").is_file():
        done = json.loads(record.read_text())
        if {"argv": done.get("argv"), "inputs": done.get("inputs")} == key:
            print(f"[study] reusing {run_dir} (same arguments and inputs; --retrain trains it again)", flush=True)
            return float(done["seconds"])
    record.unlink(missing_ok=True)
    t0 = time.perf_counter()
    main(argv)
    write_json(record, key | {"seconds": round(time.perf_counter() - t0, 1)})
    return None
