"""`make demo`: the paper's two-stage reward-model recipe, end to end, on the shipped tiny Llama in a few minutes.

Generates the synthetic HelpSteer2-format data, converts the shipped llama2.c model to Hugging Face format, trains
stage 1 (helpfulness-only regression) and stage 2 (scaled BT initialised from stage 1, which also writes the ExPO
checkpoint), then scores the validation pairs with each model, prints their accuracies and writes PNG plots and a
results JSON under runs/demo/. RewardBench scoring of these models is left to the evaluation command.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from rlhf.checkpoint import load_reward_model
from rlhf.cli import reward_main
from rlhf.data.datamodules import LoaderSpec, PreferenceDataModule
from rlhf.data.synthetic import generate
from rlhf.data.templates import TemplateSpec
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


@torch.no_grad()
def validation_margins(checkpoint: Path, val_path: Path) -> list[float]:
    """r(chosen) − r(rejected) for every validation pair (evaluation truncates, never drops)."""
    model = load_reward_model(checkpoint)
    data = PreferenceDataModule(val_path=str(val_path), tokenizer=str(MODEL_DIR), template=TemplateSpec(system=""), max_length=256, loader=LoaderSpec(eval_batch_size=64))
    data.setup("validate")
    margins: list[float] = []
    for batch in data.val_dataloader():
        chosen, rejected = model.reward(model(batch.input_ids, batch.attention_mask)).chunk(2)
        margins += (chosen - rejected).tolist()
    return margins


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
    curves = plot_loss_curves({"stage 1: regression (MSE)": OUT / "stage1/csv/metrics.csv", "stage 2: scaled BT": OUT / "stage2/csv/metrics.csv"}, OUT / "loss_curves.png")
    hist = plot_margin_histograms(margins, OUT / "reward_margins.png")
    results = {"validation_pairs": len(next(iter(margins.values()))), "accuracy": accuracy, "wall_seconds": round(time.perf_counter() - start, 1)}
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nValidation pairwise accuracy on {results['validation_pairs']} generated pairs (chance = 50%):")
    for name, acc in accuracy.items():
        print(f"  {name:<30} {acc:6.1%}")
    print(f"\nResults: {OUT / 'results.json'}\nPlots:   {curves}\n         {hist}")
    print(f"Checkpoints (LoRA + head, safetensors, with config.yaml): {', '.join(str(p) for p in CHECKPOINTS.values())}")
    print(f"wandb (offline) runs: {OUT}/stage*/wandb  (wandb sync <dir> to upload)\nDone in {results['wall_seconds']} s.")


if __name__ == "__main__":
    main()
