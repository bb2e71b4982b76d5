"""`python -m rlhf.eval.rewardbench`: RewardBench scores of reward-model checkpoints and of precomputed scores.

Each checkpoint is scored with the template and max_length of its own training config (over-length pairs are
truncated, never dropped, and counted); precomputed `id, subset, score_chosen, score_rejected` files tabulate the
same way. Writes rewardbench.json, rewardbench.md (the paper's table plus per-subset accuracies), rewardbench.png
and, per checkpoint, its per-pair scores under scores/. Scoring rules: `rlhf.eval.rewardbench_scores` (spec §5.2).
    python -m rlhf.eval.rewardbench --checkpoint runs/demo/stage1/checkpoint --checkpoint runs/demo/stage2/checkpoint --out runs/rewardbench/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Sequence

import torch

from rlhf.data.collate import PaddingSide
from rlhf.errors import ArgumentParser, run_main
from rlhf.eval.report import markdown_table, write_report
from rlhf.eval.rewardbench_data import HUB_ID, BenchPair, hub_pairs, load_pairs, load_scores, select, write_scores
from rlhf.eval.rewardbench_scores import RewardBenchResult, rewardbench_result
from rlhf.eval.score_pairs import PairScores, Progress, read_eval_settings, score_pairs
from rlhf.files import check_writable, refuse_to_replace

DEFAULT_DATA = "data/rewardbench/filtered.jsonl"


def evaluate_checkpoint(
    checkpoint: str, pairs: Sequence[BenchPair], name: str, batch_size: int = 16, max_length: int | None = None,
    padding_side: PaddingSide = "right", device: str = "cpu", backbone: str | None = None, progress: Progress | None = None,
) -> tuple[RewardBenchResult, PairScores]:
    """Load a checkpoint of this repo and score `pairs` with its training template (max_length overridable)."""
    from rlhf.models.backbone import load_tokenizer
    from rlhf.training.checkpoint import load_reward_model, read_meta

    settings = read_eval_settings(checkpoint)
    length = max_length or settings.max_length
    backbone_spec = read_meta(checkpoint)["backbone"]
    model = load_reward_model(checkpoint, backbone).to(device)
    tokenizer = load_tokenizer(backbone or backbone_spec["name_or_path"])
    scores = score_pairs(model, tokenizer, settings.template, length, pairs, batch_size, padding_side, progress)
    provenance = {
        "template": dataclasses.asdict(settings.template), "max_length": length, "config": settings.source,
        "backbone": backbone or backbone_spec["name_or_path"], "dtype": backbone_spec["dtype"], "quantize": backbone_spec["quantize"],
        "batch_size": batch_size, "padding_side": padding_side, "device": device,
    }
    result = rewardbench_result([p.subset for p in pairs], scores.chosen, scores.rejected, scores.truncated, name, checkpoint, provenance, scores.identical)
    return result, scores


def evaluate_scores(path: str, name: str, subsets: Sequence[str] | None = None, max_per_subset: int | None = None) -> RewardBenchResult:
    """Tabulate a precomputed-scores file; truncation counts are known only if every row has `truncated`."""
    rows = select(load_scores(path), subsets, max_per_subset)
    if not rows:
        raise ValueError(f"{path}: no score rows")
    flags = [r.truncated for r in rows]
    truncated = None if any(f is None for f in flags) else torch.tensor(flags, dtype=torch.bool)
    chosen = torch.tensor([r.chosen for r in rows], dtype=torch.float64)
    rejected = torch.tensor([r.rejected for r in rows], dtype=torch.float64)
    return rewardbench_result([r.subset for r in rows], chosen, rejected, truncated, name, path, {"precomputed": True})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m rlhf.eval.rewardbench", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", action="append", default=[], help="checkpoint directory of this repo (repeatable)")
    p.add_argument("--scores", action="append", default=[], help="precomputed id/subset/score_chosen/score_rejected JSONL (repeatable)")
    p.add_argument("--name", action="append", default=[], help="display names: checkpoints first, then score files, in order")
    p.add_argument("--data", default=DEFAULT_DATA, help="RewardBench-format .jsonl/.parquet (prompt, chosen, rejected, subset, id)")
    p.add_argument("--hub", action="store_true", help=f"load {HUB_ID} split 'filtered' from the hub instead of --data (network)")
    p.add_argument("--subsets", nargs="+", default=None, help="score only these subsets")
    p.add_argument("--max-per-subset", type=int, default=None, help="first N pairs of each subset, for every model (quick checks)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass (scores do not depend on it)")
    p.add_argument("--max-length", type=int, default=None, help="token limit; default: the checkpoint's training max_length")
    p.add_argument("--padding-side", choices=["right", "left"], default="right")
    p.add_argument("--backbone", default=None, help="backbone location overriding the one stored in the checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="output directory (default: runs/rewardbench/<the model names>)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in --out (default: refuse)")
    args = p.parse_args(argv)
    if not args.checkpoint and not args.scores:
        p.error("give at least one --checkpoint or --scores")
    if args.name and len(args.name) != len(args.checkpoint) + len(args.scores):
        p.error(f"{len(args.name)} --name for {len(args.checkpoint) + len(args.scores)} models")
    return args


def _check_inputs(args: argparse.Namespace, names: list[str]) -> None:
    """Fail on a checkpoint without its settings or an existing result before any model loads (the data and score
    files were already read by `main`, which raises on a missing or malformed one)."""
    from rlhf.training.checkpoint import read_meta

    for checkpoint in args.checkpoint:
        read_meta(checkpoint)  # a checkpoint of this repo
        read_eval_settings(checkpoint)  # a checkpoint without its settings is refused, not scored with guessed ones
    args.out = args.out or str(Path("runs/rewardbench") / "+".join(_slug(n) for n in names))
    refuse_to_replace(Path(args.out) / "rewardbench.json", args.overwrite, "RewardBench results")


def _default_name(path: str, is_checkpoint: bool) -> str:
    parts = Path(path).resolve().parts
    return "/".join(parts[-2:]) if is_checkpoint else Path(path).stem


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def _score_checkpoints(args: argparse.Namespace, names: list[str], pairs: list) -> list[RewardBenchResult]:
    from rich.progress import Progress as Bar

    results = []
    for checkpoint, name in zip(args.checkpoint, names):
        with Bar() as bar:
            task = bar.add_task(f"RewardBench {name}", total=3 * len(pairs))  # encode N pairs, then score 2N sequences
            result, scores = evaluate_checkpoint(
                checkpoint, pairs, name, args.batch_size, args.max_length, args.padding_side, args.device, args.backbone,
                lambda k: bar.advance(task, k),
            )
        write_scores(Path(args.out) / "scores" / f"{_slug(name)}.jsonl", pairs, scores.chosen.tolist(), scores.rejected.tolist(), scores.truncated.tolist())
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> list[RewardBenchResult]:
    """Run the command line; returns the results in table order."""
    args = parse_args(argv)
    for path in args.scores:
        load_scores(path)  # a bad scores file fails now, not after the checkpoints are scored
    pairs = None
    if args.checkpoint:  # a bad data file fails now too, before the checkpoints are looked at
        pairs = select(hub_pairs() if args.hub else load_pairs(args.data), args.subsets, args.max_per_subset)
    names = args.name or [_default_name(c, True) for c in args.checkpoint] + [_default_name(s, False) for s in args.scores]
    _check_inputs(args, names)  # also picks the default --out
    check_writable(args.out, "directory")  # before any model loads
    results = _score_checkpoints(args, names[: len(args.checkpoint)], pairs) if args.checkpoint else []
    for path, name in zip(args.scores, names[len(args.checkpoint) :]):
        results.append(evaluate_scores(path, name, args.subsets, args.max_per_subset))
    data = f"hub:{HUB_ID}/filtered" if args.hub else args.data
    paths = write_report(results, args.out, data if args.checkpoint else "precomputed scores")
    print(markdown_table(results))
    print("Wrote " + ", ".join(str(p) for p in paths.values()))
    return results


if __name__ == "__main__":
    run_main(main)
