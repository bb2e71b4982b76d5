"""`make demo`: the paper's two-stage reward-model recipe, end to end, on the shipped tiny Llama in a few minutes.

Generates the synthetic HelpSteer2-format data, converts the shipped llama2.c model to Hugging Face format, trains
stage 1 (helpfulness-only regression) and stage 2 (scaled BT initialised from stage 1, which also writes the ExPO
checkpoint), then scores the validation pairs with each model and a per-subset sample of RewardBench (the full
2,985 pairs take minutes per model on CPU: `python -m rlhf.rewardbench` runs them), and writes PNG plots, a
RewardBench table in the paper's layout and a results JSON under runs/demo/. The tiny model reads 256 characters,
so most RewardBench pairs are truncated (reported): its RewardBench numbers show the pipeline, not a good RM.
Last, REINFORCE with an RLOO baseline aligns the tiny policy against the stage-2 RM for a short run (`rlhf.align_demo`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rlhf.align_demo import print_results, run_align_demo
from rlhf.cli import reward_main
from rlhf.data.synthetic import generate
from rlhf.eval.report import markdown_table, write_report
from rlhf.eval.rewardbench_data import load_pairs, preference_file_pairs, select
from rlhf.eval.score_pairs import score_pairs
from rlhf.expo import sweep
from rlhf.rewardbench import evaluate_checkpoint
from rlhf.score import load_scorer
from rlhf.models.llama2c import convert_llama2c
from rlhf.plots import plot_loss_curves, plot_margin_histograms

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


def main() -> None:
    start = time.perf_counter()
    shutil.rmtree(OUT, ignore_errors=True)
    data_files = generate(OUT / "data", seed=0)
    convert_llama2c("data/tiny-llama/model.bin", "data/tiny-llama/tokenizer.model", MODEL_DIR)
    for title, config in STAGES.items():
        print(f"\n=== {title}: python train.py fit --config {config}")
        reward_main(["fit", "--config", config])
    margins = {name: validation_margins(path, data_files["preference_val"]) for name, path in CHECKPOINTS.items()}
    accuracy = {name: sum(m > 0 for m in values) / len(values) for name, values in margins.items()}
    val_pairs = {"validation": preference_file_pairs(data_files["preference_val"])}
    expo_rows = sweep(str(CHECKPOINTS["stage 1: regression"]), str(CHECKPOINTS["stage 2: scaled BT"]), EXPO_ALPHAS, val_pairs)
    bench = select(load_pairs(REWARDBENCH), None, REWARDBENCH_PER_SUBSET)
    results = [evaluate_checkpoint(str(path), bench, name, batch_size=32)[0] for name, path in CHECKPOINTS.items()]
    report = write_report(results, OUT / "rewardbench", f"{REWARDBENCH} ({REWARDBENCH_PER_SUBSET} pairs per subset)")
    curves = plot_loss_curves({"stage 1: regression (MSE)": OUT / "stage1/csv/metrics.csv", "stage 2: scaled BT": OUT / "stage2/csv/metrics.csv"}, OUT / "loss_curves.png")
    hist = plot_margin_histograms(margins, OUT / "reward_margins.png")
    summary = {
        "validation_pairs": len(next(iter(margins.values()))), "accuracy": accuracy,
        "rewardbench": {r.model: {"overall": r.overall, **r.sections, "pairs": r.n_pairs, "truncated": r.n_truncated} for r in results},
        "expo_sweep": expo_rows, "wall_seconds": round(time.perf_counter() - start, 1),
    }
    (OUT / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nValidation pairwise accuracy on {summary['validation_pairs']} generated pairs (chance = 50%):")
    for name, acc in accuracy.items():
        print(f"  {name:<30} {acc:6.1%}")
    print("ExPO sweep on the validation pairs (python -m rlhf.expo --sweep ...): " + ", ".join(f"alpha {r['alpha']}: {r['validation/accuracy']:.1%}" for r in expo_rows))
    print(f"\nRewardBench, {REWARDBENCH_PER_SUBSET} pairs per subset (full set: python -m rlhf.rewardbench --checkpoint DIR):\n{markdown_table(results)}")
    print(f"Results: {OUT / 'results.json'}\nPlots:   {curves}\n         {hist}\n         {report['png']}\nTables:  {report['md']}")
    print(f"Checkpoints (LoRA + head, safetensors, with config.yaml): {', '.join(str(p) for p in CHECKPOINTS.values())}")
    print(f"wandb (offline) runs: {OUT}/stage*/wandb  (wandb sync <dir> to upload)")
    print("\n=== REINFORCE/RLOO: python align.py fit --config configs/align/demo_tiny.yaml")
    align = run_align_demo(OUT / "align")
    print_results(align)
    summary["align"] = {k: align[k] for k in ("steps", "before", "after", "seconds_per_step", "plot")}
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    (OUT / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nDone in {summary['wall_seconds']} s. Summary: {OUT / 'results.json'}")


if __name__ == "__main__":
    from rlhf.errors import run_main

    run_main(lambda argv: main())
