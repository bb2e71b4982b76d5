"""`summary.json`: one small file per run, next to its checkpoint, so sweeps and comparisons read a single file.

It holds a hash of the resolved config (runs with equal hashes are the same experiment), the final logged metrics
(floats), the optimizer step reached, the wall time (summed over resumes) and the peak memory: CUDA's peak allocated
bytes when a GPU was used, else the process's peak resident set size. Written atomically by
`rlhf.training.checkpoint_callback.TrainedWeightsCheckpoint` at the end of every `train.py`, `align.py` and `dpo.py` fit.
"""

from __future__ import annotations

import hashlib
import math
import resource
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rlhf.files import write_json

SUMMARY_NAME = "summary.json"


def config_hash(config_yaml: str | None) -> str | None:
    """sha256 (first 16 hex digits) of the resolved config text."""
    return None if config_yaml is None else hashlib.sha256(config_yaml.encode()).hexdigest()[:16]


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Scalar metrics as floats, sorted by name; a non-finite value becomes None (JSON has no NaN)."""
    out: dict[str, float | None] = {}
    for name, value in sorted(metrics.items()):
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        value = float(value)
        out[name] = value if math.isfinite(value) else None
    return out


def peak_memory() -> dict[str, Any]:
    """Peak memory of this process: CUDA allocated bytes if CUDA was used, and the peak RSS in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # kB on Linux
    out: dict[str, Any] = {"peak_rss_bytes": int(rss)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_cuda_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    return out


def run_summary(config_yaml: str | None, metrics: Mapping[str, Any], global_step: int, wall_time_s: float) -> dict[str, Any]:
    """The summary as a dict (see the module docstring)."""
    return {"config_hash": config_hash(config_yaml), "global_step": global_step, "wall_time_s": round(wall_time_s, 3),
            **peak_memory(), "metrics": final_metrics(metrics)}


def write_summary(directory: str | Path, config_yaml: str | None, metrics: Mapping[str, Any], global_step: int, wall_time_s: float) -> Path:
    """Write `directory/summary.json` atomically and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return write_json(directory / SUMMARY_NAME, run_summary(config_yaml, metrics, global_step, wall_time_s))
