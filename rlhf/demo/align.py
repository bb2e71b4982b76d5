"""The demo's alignment step: REINFORCE/RLOO on the shipped tiny Llama against the demo RM, in well under a minute.

`run_align_demo(out_dir)` runs `configs/align/demo_tiny.yaml` through `align_main`, scores a fixed set of held-out
prompts (the demo's validation prompts, K samples each, fixed seed) with the RM before and after training, measures
the KL to the reference there, writes reward and KL curves per step as a PNG and returns the numbers, a few
generations before/after and the mean seconds per step spent generating, scoring and training. Needs
models/tiny-llama-hf and runs/demo/stage2/checkpoint (`make demo`); `python -m rlhf.demo.align` runs it alone.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import torch

from rlhf.align.module import ReinforceModule
from rlhf.align.rollout import make_rollout
from rlhf.cli import align_main
from rlhf.data.prompts import PromptDataModule
from rlhf.files import write_json
from rlhf.losses import sequence_kl
from rlhf.models.policy import eval_mode, reference_logprobs, sample, token_logprobs

CONFIG = "configs/align/demo_tiny.yaml"
EVAL_PROMPTS = "runs/demo/data/preference_val.jsonl"


@torch.no_grad()
def evaluate(module: ReinforceModule, data: PromptDataModule, seed: int = 0, shown: int = 4) -> dict[str, Any]:
    """Mean RM score, KL to the reference (|k1| and k1 token means), length and ended fraction on held-out prompts."""
    torch.manual_seed(seed)
    scores, kls, k1s, lengths, ended, samples = [], [], [], [], [], []
    for batch in data.train_dataloader():
        sequences = sample(module.model, batch, module.generation, module.eos_ids, module.tokenizer.pad_token_id)
        rollout = make_rollout(sequences, batch, module.generation.num_samples, module.tokenizer, module.reward, module.eos_ids)
        args = (rollout.sequences, rollout.attention_mask, rollout.prompt_length, module.generation.temperature)
        with eval_mode(module.model):
            logp = token_logprobs(module.model, *args)
        ref = reference_logprobs(module.model, *args)
        kls.append(sequence_kl(logp, ref, rollout.response_mask, "abs", "mean"))
        k1s.append(sequence_kl(logp, ref, rollout.response_mask, "k1", "mean"))
        scores.append(rollout.scores)
        lengths.append(rollout.response_mask.sum(1).float())
        ended.append(rollout.ended.float())
        samples += [{"prompt": p, "response": r, "score": round(float(s), 3)} for p, r, s in zip(rollout.prompts, rollout.responses, rollout.scores)]
    step = module.generation.num_samples  # one sample per prompt for display
    mean = lambda xs: round(float(torch.cat(xs).mean()), 4)  # noqa: E731
    return {"score": mean(scores), "kl_abs": mean(kls), "kl_k1": mean(k1s), "length": mean(lengths), "ended_fraction": mean(ended),
            "generations": samples[::step][:shown]}


def read_curves(metrics_csv: Path) -> dict[str, list[float]]:
    """Per-step series from Lightning's CSVLogger file (rows without a value are skipped)."""
    series: dict[str, list[float]] = {}
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if value not in ("", None) and key != "epoch":
                    series.setdefault(key, []).append(float(value))
    return series


def plot_curves(series: dict[str, list[float]], out: Path) -> Path:
    """Reward and KL per step, side by side (matplotlib Agg)."""
    from rlhf.eval.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, title in zip(axes, ("rollout/score", "rollout/kl"), ("RM score (mean over samples)", "KL to reference (|k1| token mean)")):
        ax.plot(range(len(series.get(key, []))), series.get(key, []), marker=".")
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
    return save_figure(fig, out, dpi=110)


def _eval_data(cli, n_prompts: int, path: str = EVAL_PROMPTS) -> PromptDataModule:
    train = cli.datamodule
    data = PromptDataModule(path=path, split="val", tokenizer=train.tokenizer_path, template=train.template,
                            max_prompt_length=train.max_prompt_length, batch_size=n_prompts, limit=n_prompts, shuffle=False)
    data.setup("fit")
    return data


def run_align_demo(out_dir: str | Path = "runs/demo/align", config: str = CONFIG, *, n_eval_prompts: int = 16, max_steps: int | None = None,
                   eval_prompts: str = EVAL_PROMPTS) -> dict[str, Any]:
    """Train the demo policy, write `<out_dir>/align_curves.png` and `results.json`, and return the results."""
    start, out = time.perf_counter(), Path(out_dir)
    steps = [] if max_steps is None else [f"--trainer.max_steps={max_steps}"]
    cli = align_main(["--config", config, f"--trainer.default_root_dir={out}", f"--trainer.logger.init_args.save_dir={out}",
                      f"--checkpoint.dirpath={out / 'checkpoint'}", "--checkpoint.overwrite=true", *steps], run=False)  # a demo rebuilds its output
    cli.model.configure_model()
    eval_data = _eval_data(cli, n_eval_prompts, eval_prompts)
    before = evaluate(cli.model, eval_data)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    after = evaluate(cli.model, eval_data)
    series = read_curves(Path(cli.trainer.logger.log_dir) / "metrics.csv")
    times = {k: round(sum(v) / len(v), 3) for k, v in series.items() if k.startswith("time/")}
    results = {
        "steps": cli.trainer.global_step,
        "eval_prompts": n_eval_prompts * cli.model.generation.num_samples,
        "before": {k: v for k, v in before.items() if k != "generations"},
        "after": {k: v for k, v in after.items() if k != "generations"},
        "generations": {"before": before["generations"], "after": after["generations"]},
        "seconds_per_step": times,
        "curves": {k: series.get(k, []) for k in ("rollout/score", "rollout/kl", "rollout/ended_fraction")},
        "plot": str(plot_curves(series, out / "align_curves.png")),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    write_json(out / "results.json", results)
    return results


def print_results(results: dict[str, Any]) -> None:
    b, a = results["before"], results["after"]
    print(f"\nREINFORCE/RLOO, {results['steps']} steps; held-out RM score {b['score']:.3f} -> {a['score']:.3f}, "
          f"KL (|k1| mean) {b['kl_abs']:.3f} -> {a['kl_abs']:.3f}; seconds/step {results['seconds_per_step']}")
    for when in ("before", "after"):
        print(f"  {when}:")
        for g in results["generations"][when]:
            print(f"    [{g['score']:+.2f}] {g['prompt']!r} -> {g['response']!r}")
    print(f"Curves: {results['plot']}   ({results['wall_seconds']} s)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """`python -m rlhf.demo.align`: the demo's short run alone, into its own directory (make demo's is runs/demo/align)."""
    from rlhf.errors import ArgumentParser
    from rlhf.files import refuse_to_replace

    p = ArgumentParser(prog="python -m rlhf.demo.align", description="The demo's REINFORCE/RLOO run against the stage-2 RM.")
    p.add_argument("--out", default="runs/align-demo", help="output directory (make demo writes runs/demo/align)")
    p.add_argument("--max-steps", type=int, default=None, help="fewer optimizer steps than the config's 30 (quick checks)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out (default: refuse)")
    args = p.parse_args(argv)
    refuse_to_replace(Path(args.out) / "results.json", args.overwrite, "an align demo run")
    results = run_align_demo(args.out, max_steps=args.max_steps)
    print_results(results)
    return results


if __name__ == "__main__":
    from rlhf.errors import run_main

    run_main(main)
