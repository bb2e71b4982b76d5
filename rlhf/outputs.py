"""Result files of the evaluation commands (`rlhf.score`, `rlhf.rewardbench`, `rlhf.compare_policies`, `rlhf.expo`)
never silently replace earlier results: an existing output is refused, before any model loads, unless the command
is given `--overwrite`. Training checkpoints follow their own rule (the checkpoint callback).
"""

from __future__ import annotations

from pathlib import Path


def refuse_to_replace(path: str | Path, overwrite: bool, what: str = "results") -> None:
    """Raise FileExistsError if `path` exists (a non-empty directory, or a file) and `overwrite` is false."""
    path = Path(path)
    exists = any(path.iterdir()) if path.is_dir() else path.exists()
    if exists and not overwrite:
        raise FileExistsError(f"{path} already holds {what}; give another output path, or --overwrite to replace them")
