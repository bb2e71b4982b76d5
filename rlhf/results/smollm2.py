"""SmolLM2-135M-Instruct end to end: the recipe of configs/smollm2/, evaluated, written to docs/results/smollm2/.

`run(work, sizes)` writes the data splits, trains stage 1 (regression), the stage-2 variants (scaled BT + ExPO, BT
from stage 1, BT from scratch), scores every RM and the zero-shot baseline (mean token log-prob) on the held-out
hh-rlhf pairs, the 5 HelpSteer2-Preference test pairs (ties reported apart) and a stratified RewardBench sample
(the full 2,985 pairs for the best RM), then runs REINFORCE against the best RM and scores held-out prompts before
and after. `RESULTS` is the published run, `DEMO` (`make demo-smollm2`) a minutes-long version of the same stages.
The configs are copied with `runs/smollm2/` replaced by the work directory and their step counts capped. A training
stage already finished with the same config file and arguments is reused (`rlhf.training.reuse`), so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from rlhf.cli import reward_main
from rlhf.data.formats import detect_format, scored_pair
from rlhf.data.rows import read_rows
from rlhf.demo.align import run_align_demo
from rlhf.eval.report import write_report
from rlhf.eval.rewardbench import evaluate_checkpoint
from rlhf.eval.rewardbench_data import BenchPair, load_pairs, select
from rlhf.eval.rewardbench_scores import rewardbench_result
from rlhf.models.smollm2 import DEFAULT_OUT as MODEL_DIR
from rlhf.models.smollm2 import convert_smollm2
from rlhf.results.smollm2_data import write_splits
from rlhf.results.zero_shot import zero_shot_scores
from rlhf.reward.score import score_file
from rlhf.training.reuse import train_once

REWARDBENCH = "data/rewardbench/filtered.jsonl"
ZERO_SHOT = "zero-shot: mean token log-prob"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much of each stage runs. None = the config's own length (one epoch)."""

    stage1_steps: int | None
    stage2_steps: int | None
    variants: tuple[str, ...]
    max_length: int
    val_pairs: int | None
    rewardbench_per_subset: int
    full_rewardbench: bool
    align_steps: int
    eval_prompts: int
    max_new_tokens: int = 96  # of each REINFORCE sample (the config's own: 96)


# sized to the 2-core machine, measured 2026-12-02: stage 2 ~18 s per step of 8 pairs, RM scoring ~0.3 s per sequence,
# a REINFORCE step of 4 prompts x 4 samples 37 s (93 s while other jobs shared the machine). RESULTS took 120 min.
# DEMO (30 val pairs, 2 REINFORCE steps, 2 x 4 eval samples of 48 new tokens) took 8.2 min idle, measured 2026-12-02:
# stage 1 81 s, stage 2 125 s, four evaluations 214 s, REINFORCE 63 s; 16.7 min on a machine shared with other jobs
RESULTS = Sizes(None, 30, ("stage2_scaled_bt", "stage2_bt", "bt_scratch"), 512, None, 3, True, 6, 8)
DEMO = Sizes(6, 8, ("stage2_scaled_bt",), 384, 30, 1, False, 2, 2, 48)
NAMES = {"stage1": "stage 1: regression (helpfulness)", "stage2_scaled_bt": "stage 2: scaled BT from stage 1",
         "stage2_scaled_bt/checkpoint-expo": "stage 2: scaled BT + ExPO (alpha 0.52)", "stage2_bt": "stage 2: BT from stage 1",
         "bt_scratch": "BT from scratch"}


def _config(name: str, work: Path, overrides: dict[str, str]) -> Path:
    """configs/smollm2/<name>.yaml with runs/smollm2/ → work/ and `key: old` → `key: new` replacements."""
    text = Path(f"configs/smollm2/{name}.yaml").read_text().replace("runs/smollm2/", f"{work}/")
    for old, new in overrides.items():
        text = text.replace(old, new)
    path = work / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _steps(n: int | None) -> list[str]:
    return [] if n is None else [f"--trainer.max_steps={n}"]  # capped; never more than the config's one epoch


def _pair_texts(path: Path) -> tuple[list[BenchPair], list[bool]]:
    rows = read_rows(str(path))
    name = detect_format(rows).name
    pairs, ties = [], []
    for i, row in enumerate(rows):
        (prompt, chosen, rejected), tie = scored_pair(row, name)
        pairs.append(BenchPair(path.stem, str(i), prompt, chosen, rejected))
        ties.append(tie)
    return pairs, ties


def _pair_summary(chosen: torch.Tensor, rejected: torch.Tensor, ties: list[bool], truncated: torch.Tensor) -> dict[str, Any]:
    tie = torch.tensor(ties, dtype=torch.bool)
    right = (chosen > rejected) & ~tie
    n = int((~tie).sum())
    acc = float(right.sum()) / max(n, 1)
    half_width = 1.96 * math.sqrt(0.25 / max(n, 1))
    return {"pairs": n, "accuracy": round(acc, 4), "at_chance": abs(acc - 0.5) <= half_width, "ci95_half_width_at_chance": round(half_width, 4),
            "ties": int(tie.sum()), "tie_mean_abs_margin": round(float((chosen - rejected)[tie].abs().mean()), 4) if tie.any() else None,
            "truncated": int(truncated.sum())}


def _score_rm(checkpoint: Path, files: dict[str, Path], work: Path) -> dict[str, Any]:
    out = {}
    for split in ("hh_val", "hs2p_test"):
        scored = work / "scores" / f"{checkpoint.parent.name}_{checkpoint.name}_{split}.jsonl"
        summary = score_file(str(checkpoint), str(files[split]), str(scored), batch_size=8)
        rows = [json.loads(line) for line in scored.read_text().splitlines()]
        chosen, rejected = torch.tensor([r["score_chosen"] for r in rows]), torch.tensor([r["score_rejected"] for r in rows])
        out[split] = _pair_summary(chosen, rejected, [r["tie"] for r in rows], torch.tensor([r["truncated"] for r in rows]))
        out[split]["template"], out[split]["max_length"] = summary["template"], summary["max_length"]
    return out


def _zero_shot(files: dict[str, Path], bench: list[BenchPair], max_length: int) -> tuple[dict[str, Any], Any]:
    out: dict[str, Any] = {}
    for split in ("hh_val", "hs2p_test"):
        pairs, ties = _pair_texts(files[split])
        scores, cut = zero_shot_scores(str(MODEL_DIR), [p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs], max_length)
        n = len(pairs)
        out[split] = _pair_summary(scores[:n], scores[n:], ties, cut[:n] | cut[n:])
    scores, cut = zero_shot_scores(str(MODEL_DIR), [p.prompt for p in bench] * 2, [p.chosen for p in bench] + [p.rejected for p in bench], max_length)
    n = len(bench)
    result = rewardbench_result([p.subset for p in bench], scores[:n], scores[n:], cut[:n] | cut[n:], ZERO_SHOT, str(MODEL_DIR),
                                {"template": "chat", "max_length": max_length, "score": "mean token log-prob of the response"}, scores[:n] == scores[n:])
    return out, result


def _rb(result) -> dict[str, Any]:
    return {"overall": round(result.overall, 4), **{k: round(v, 4) for k, v in result.sections.items()}, "pairs": result.n_pairs, "truncated": result.n_truncated}


def pick_threads() -> int:
    """One intra-op thread when the machine is busier than its cores (then two threads contend and run several times
    slower than one; measured in docs/benchmarks.md), else torch's default. Sets it and returns it."""
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        torch.set_num_threads(1)
    return torch.get_num_threads()


def run(work: str | Path = "runs/smollm2", sizes: Sizes = RESULTS, seed: int = 0) -> dict[str, Any]:
    """Train, evaluate and align; returns (and writes to work/results.json) every number with its wall time."""
    start, work = time.perf_counter(), Path(work)
    load_at_start = os.getloadavg()
    print(f"torch threads: {pick_threads()} (load average {load_at_start[0]:.1f} on {os.cpu_count()} cores)", flush=True)
    convert_smollm2(MODEL_DIR)
    files = write_splits(work / "data")
    if sizes.val_pairs is not None:  # the demo scores the first val_pairs held-out pairs only
        lines = files["hh_val"].read_text().splitlines()[: sizes.val_pairs]
        files["hh_val"].write_text("".join(line + "\n" for line in lines))
    length = {"max_length: 512": f"max_length: {sizes.max_length}", "seed_everything: 0": f"seed_everything: {seed}"}
    timings: dict[str, float] = {}
    for name, steps in [("stage1_regression", sizes.stage1_steps)] + [(v, sizes.stage2_steps) for v in sizes.variants]:
        t = time.perf_counter()
        print(f"\n=== {name}: python train.py fit --config configs/smollm2/{name}.yaml", flush=True)
        reused = train_once(reward_main, ["fit", "--config", str(_config(name, work, length)), *_steps(steps)],
                            work / ("stage1" if name == "stage1_regression" else name))  # a stopped run resumes: a finished stage is reused
        timings[name] = reused if reused is not None else round(time.perf_counter() - t, 1)
    checkpoints = {NAMES["stage1"]: work / "stage1/checkpoint"}
    for v in sizes.variants:
        checkpoints[NAMES[v]] = work / v / "checkpoint"
        if (work / v / "checkpoint-expo").is_dir():
            checkpoints[NAMES[f"{v}/checkpoint-expo"]] = work / v / "checkpoint-expo"
    bench = select(load_pairs(REWARDBENCH), None, sizes.rewardbench_per_subset)
    t = time.perf_counter()
    pairs_eval, bench_results = {}, []
    zero, zero_rb = _zero_shot(files, bench, sizes.max_length)
    pairs_eval[ZERO_SHOT], timings["eval zero-shot"] = zero, round(time.perf_counter() - t, 1)
    bench_results.append(zero_rb)
    for name, path in checkpoints.items():
        t = time.perf_counter()
        pairs_eval[name] = _score_rm(path, files, work)
        bench_results.append(evaluate_checkpoint(str(path), bench, name, batch_size=8)[0])
        timings[f"eval {name}"] = round(time.perf_counter() - t, 1)
    best = max(checkpoints, key=lambda n: (pairs_eval[n]["hh_val"]["accuracy"], n))
    report = write_report(bench_results, work / "rewardbench_sample", f"{REWARDBENCH} ({sizes.rewardbench_per_subset} pairs per subset, seedless first-k)")
    full = None
    if sizes.full_rewardbench:
        t = time.perf_counter()
        full_result = evaluate_checkpoint(str(checkpoints[best]), load_pairs(REWARDBENCH), best, batch_size=8)[0]
        write_report([full_result], work / "rewardbench_full", f"{REWARDBENCH} (all 2,985 pairs)")
        full, timings["rewardbench full (best)"] = _rb(full_result), round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    align_cfg = _config("reinforce", work, {**length, "max_steps: 40": f"max_steps: {sizes.align_steps}",
                                            "max_new_tokens: 96": f"max_new_tokens: {sizes.max_new_tokens}",
                                            f"{work}/stage2_scaled_bt/checkpoint-expo": str(checkpoints[best])})
    align = run_align_demo(work / "align", str(align_cfg), n_eval_prompts=sizes.eval_prompts, eval_prompts=str(files["prompts_eval"]))
    timings["reinforce"] = round(time.perf_counter() - t, 1)
    results = {
        "model": str(MODEL_DIR), "seed": seed, "sizes": dataclasses.asdict(sizes), "best_rm": best, "best_rm_path": str(checkpoints[best]),
        "pairs": pairs_eval, "rewardbench_sample": {r.model: _rb(r) for r in bench_results}, "rewardbench_full_best": full,
        "rewardbench_png": str(report["png"]), "align": {k: align[k] for k in ("steps", "eval_prompts", "before", "after", "generations", "seconds_per_step", "curves", "plot")},
        "wall_seconds": {**timings, "total": round(time.perf_counter() - start, 1)},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlhf.results.smollm2", description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/smollm2", help="where runs, checkpoints and scores go")
    parser.add_argument("--out", default="docs/results/smollm2", help="where README.md, results.json and the PNGs go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rlhf.results.smollm2_report import publish

    command = "python -m rlhf.results.smollm2 " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    publish(run(args.work, RESULTS, args.seed), Path(args.out), command.strip())


if __name__ == "__main__":
    main()
