"""`make demo`: the paper's two-stage reward-model recipe, end to end, on the shipped tiny Llama in a few minutes.

Generates the synthetic HelpSteer2-format data, converts the shipped llama2.c model to Hugging Face format, trains
stage 1 (helpfulness-only regression) and stage 2 (scaled BT initialised from stage 1, which also writes the ExPO
checkpoint), then scores the validation pairs with each model and a per-subset sample of RewardBench (the full
2,985 pairs take minutes per model on CPU: `python -m rlhf.eval.rewardbench` runs them), and writes PNG plots, a
RewardBench table in the paper's layout and a results JSON under runs/demo/. The tiny model reads 256 characters,
so most RewardBench pairs are truncated (reported): its RewardBench numbers show the pipeline, not a good RM.
Last, REINFORCE with an RLOO baseline aligns the tiny policy against the stage-2 RM for a short run (`rlhf.demo.align`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rlhf.cli import reward_main
from rlhf.data.synthetic import generate
from rlhf.demo.align import run_align_demo
from rlhf.errors import ArgumentParser
from rlhf.eval.plots import plot_loss_curves, plot_margin_histograms
from rlhf.eval.report import write_report
from rlhf.eval.rewardbench import evaluate_checkpoint
from rlhf.eval.rewardbench_data import load_pairs, preference_file_pairs, select
from rlhf.eval.rewardbench_scores import SECTIONS
from rlhf.eval.score_pairs import score_pairs
from rlhf.files import refuse_to_replace, write_json
from rlhf.models.llama2c import convert_llama2c
from rlhf.reward.expo import sweep
from rlhf.reward.score import load_scorer

OUT = Path("runs/demo")
MODEL_DIR = Path("models/tiny-llama-hf")
STAGES = {"stage 1: regression (helpfulness)": "configs/demo/stage1_regression.yaml", "stage 2: scaled BT from stage 1": "configs/demo/stage2_scaled_bt.yaml"}
CHECKPOINTS = {
    "stage 1: regression": OUT / "stage1/checkpoint",
    "stage 2: scaled BT": OUT / "stage2/checkpoint",
    "stage 2 + ExPO (alpha 0.52)": OUT / "stage2/checkpoint-expo",
}
REWARDBENCH = "data/rewardbench/filtered.jsonl"
EXPO_ALPHAS = (0.0, 0.25, 0.52, 1.0)
REWARDBENCH_PER_SUBSET = 10  # 23 subsets → 230 pairs per model, to stay within the demo's few minutes


def validation_margins(checkpoint: Path, val_path: Path) -> list[float]:
    """r(chosen) − r(rejected) for every validation pair (evaluation truncates, never drops)."""
    model, tokenizer, settings, _ = load_scorer(checkpoint)
    scores = score_pairs(model, tokenizer, settings.template, settings.max_length, preference_file_pairs(val_path), batch_size=64)
    return (scores.chosen - scores.rejected).tolist()


def summary_table(accuracy: dict[str, float], results: list, align: dict) -> str:
    """One table of every result: validation accuracy and RewardBench per model, then the REINFORCE run."""
    lines = ["| Model | Val. accuracy | RewardBench | Chat | Chat-Hard | Safety | Reasoning | Truncated |", "|---" * 8 + "|"]
    for r in results:
        cells = [f"{100 * r.sections[s]:.1f}" if s in r.sections else "–" for s in SECTIONS]
        lines.append(f"| {r.model} | {accuracy[r.model]:.1%} | {100 * r.overall:.1f} | " + " | ".join(cells) + f" | {r.n_truncated}/{r.n_pairs} |")
    b, a = align["before"], align["after"]
    lines.append(f"| REINFORCE/RLOO policy, {align['steps']} steps | held-out RM score {b['score']:.3f} → {a['score']:.3f} | "
                 f"KL {b['kl_abs']:.3f} → {a['kl_abs']:.3f} | | | | | |")
    return "\n".join(lines)


def main(overwrite: bool = False) -> dict:
    start = time.perf_counter()
    refuse_to_replace(OUT / "results.json", overwrite, "a finished demo (make demo DEMO_ARGS=--overwrite replaces it)")
    shutil.rmtree(OUT, ignore_errors=True)
    data_files = generate(OUT / "data", seed=0)
    convert_llama2c("data/tiny-llama/model.bin", "data/tiny-llama/tokenizer.model", MODEL_DIR)
    for title, config in STAGES.items():
        print(f"=== {title}: .venv/bin/python train.py fit --config {config}", flush=True)
        reward_main(["fit", "--config", config])
    print("=== evaluating the three reward models: validation pairs, ExPO sweep, RewardBench sample", flush=True)
    margins = {name: validation_margins(path, data_files["preference_val"]) for name, path in CHECKPOINTS.items()}
    accuracy = {name: sum(m > 0 for m in values) / len(values) for name, values in margins.items()}
    val_pairs = {"validation": preference_file_pairs(data_files["preference_val"])}
    expo_rows = sweep(str(CHECKPOINTS["stage 1: regression"]), str(CHECKPOINTS["stage 2: scaled BT"]), EXPO_ALPHAS, val_pairs)
    bench = select(load_pairs(REWARDBENCH), None, REWARDBENCH_PER_SUBSET)
    results = [evaluate_checkpoint(str(path), bench, name, batch_size=32)[0] for name, path in CHECKPOINTS.items()]
    report = write_report(results, OUT / "rewardbench", f"{REWARDBENCH} ({REWARDBENCH_PER_SUBSET} pairs per subset)")
    curves = plot_loss_curves({"stage 1: regression (MSE)": OUT / "stage1/csv/metrics.csv", "stage 2: scaled BT": OUT / "stage2/csv/metrics.csv"}, OUT / "loss_curves.png")
    hist = plot_margin_histograms(margins, OUT / "reward_margins.png")
    print("=== REINFORCE/RLOO against the stage-2 RM: .venv/bin/python -m rlhf.demo.align", flush=True)
    align = run_align_demo(OUT / "align")
    summary = {
        "validation_pairs": len(next(iter(margins.values()))), "accuracy": accuracy,
        "rewardbench": {r.model: {"overall": r.overall, **r.sections, "pairs": r.n_pairs, "truncated": r.n_truncated} for r in results},
        "expo_sweep": expo_rows, "align": {k: align[k] for k in ("steps", "before", "after", "seconds_per_step", "plot")},
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    write_json(OUT / "results.json", summary)
    print(f"\nResults: validation accuracy on {summary['validation_pairs']} generated pairs (chance 50%), RewardBench on "
          f"{REWARDBENCH_PER_SUBSET} pairs per subset (the tiny model reads 256 characters: nearly every pair is truncated)\n")
    print(summary_table(accuracy, results, align))
    print("\nExPO sweep, validation accuracy: " + ", ".join(f"α {r['alpha']}: {r['validation/accuracy']:.1%}" for r in expo_rows))
    print(f"Plots:       {curves}, {hist}, {report['png']}, {align['plot']}")
    print(f"Tables:      {report['md']}, {OUT / 'results.json'} (also the align run's generations: {OUT / 'align/results.json'})")
    print(f"Checkpoints: {', '.join(str(p) for p in CHECKPOINTS.values())}, {OUT / 'align/checkpoint'}")
    print(f"wandb:       {OUT}/stage1/wandb, {OUT}/stage2/wandb (offline; wandb sync <dir> uploads)")
    print(f"Done in {summary['wall_seconds']} s.")
    return summary


def cli(argv: list[str]) -> None:
    """`python -m rlhf.demo [--overwrite]` (rlhf/demo/__main__.py)."""
    p = ArgumentParser(prog="python -m rlhf.demo", description="make demo: the two-stage recipe end to end on the tiny Llama")
    p.add_argument("--overwrite", action="store_true", help="replace a finished demo in runs/demo (default: refuse)")
    main(p.parse_args(argv).overwrite)
