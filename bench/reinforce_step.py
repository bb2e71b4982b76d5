"""REINFORCE step time with its generate / score / train split, against TRL's RLOOTrainer, one process, same settings.

Both sides train the same random-weight Llama policy (`--shape`) with the same LoRA (r 8, all 7 projections), K
samples per prompt with HF `generate` (temperature 1, no top-k/p, `--new-tokens` new tokens; random weights rarely
emit EOS, so lengths are equal), the same frozen reward model (a 1-step checkpoint of this repo, scored through
`rlhf.align.rewards.RewardModelScore`; TRL gets it as a Python reward function), β = 0.01, AdamW, `--prompts` prompts per
step. Ours runs `align.py`'s CLI (configs/align/demo_tiny.yaml with overrides); TRL's RLOOTrainer gets peft's LoRA, so
its reference is also the adapter-off model. Timed steps follow `--warmup` untimed ones; each side runs `--repeats`
times, alternating, and the median run is reported. TRL runs only when `trl`
is installed (`pip install -e ".[bench]"`). Example: OMP_NUM_THREADS=1 python bench/reinforce_step.py --shape tiny
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, SHAPES, device_name, save_random_llama, sync  # noqa: E402
from rlhf.cli import align_main, reward_main  # noqa: E402
from rlhf.files import write_json  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class StepSplit(Callback):
    """Per training step: generate, score and the rest (log-probs, loss, backward, optimizer), from the module's timers."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync()
        t = pl_module._times
        total = time.perf_counter() - t["start"]
        self.steps.append({"generate": t["generate"], "score": t["score"], "train": total - t["generate"] - t["score"], "total": total})


def make_reward_model(model_dir: Path, data_dir: Path, out: Path) -> Path:
    """A 1-step reward model of this repo on the generated pairs (its weights hardly matter for timing)."""
    args = [f"--model.backbone.name_or_path={model_dir}", "--model.backbone.attn_implementation=sdpa", "--model.backbone.lora.r=4",
            "--model.loss=bt", "--trainer.max_steps=1", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
            "--trainer.accelerator=cpu", f"--trainer.default_root_dir={out}", f"--checkpoint.dirpath={out}/checkpoint",
            "--data=rlhf.data.datamodules.PreferenceDataModule", f"--data.train_path={data_dir}/preference_train.jsonl",
            f"--data.val_path={data_dir}/preference_val.jsonl", "--data.template.system=", "--data.max_length=256", "--data.loader.batch_size=2"]
    cli = reward_main(args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return out / "checkpoint"


def run_ours(model_dir: Path, rm: Path, data_dir: Path, args, out: Path) -> list[dict]:
    split = StepSplit()
    cli = align_main([
        "--config", str(REPO / "configs/align/demo_tiny.yaml"), f"--model.backbone.name_or_path={model_dir}",
        f"--model.backbone.attn_implementation={'auto' if torch.cuda.is_available() else 'sdpa'}",
        f"--model.reward.init_args.path={rm}", f"--model.generation.num_samples={args.k}", f"--model.generation.max_new_tokens={args.new_tokens}",
        "--model.objective.kl_coef=0.01", "--model.sample_table_every_n_steps=0", f"--trainer.max_steps={args.warmup + args.steps}",
        "--trainer.logger=false", f"--trainer.default_root_dir={out}", f"--checkpoint.dirpath={out}/checkpoint",
        f"--trainer.accelerator={'gpu' if torch.cuda.is_available() else 'cpu'}",
        f"--data.path={data_dir}/preference_train.jsonl", f"--data.batch_size={args.prompts}",
    ], run=False)
    cli.trainer.callbacks.append(split)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return split.steps[args.warmup:]


def run_trl(model_dir: Path, rm: Path, data_dir: Path, args, out: Path) -> list[dict]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    from rlhf.align.rewards import RewardModelScore
    from rlhf.data.prompts import PromptStats, render_prompt, unique_prompts
    from rlhf.data.rows import read_rows
    from rlhf.data.templates import TemplateSpec

    raw = unique_prompts(read_rows(data_dir / "preference_train.jsonl"), "train", PromptStats())
    rendered = {render_prompt(TemplateSpec(name="steerlm", system=""), r): r for r in raw}  # the text both policies continue
    scorer = RewardModelScore(str(rm), batch_size=64)
    scorer.build()

    def reward(prompts, completions, **kwargs):  # the RM re-renders the raw prompt in its own template, as ours does
        return scorer.score([rendered[p] for p in prompts], completions).tolist()

    prompts = list(rendered)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token_id, tokenizer.padding_side = 0, "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32 if not torch.cuda.is_available() else torch.bfloat16)
    times: list[dict] = []

    class Timing(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            sync()
            self.start = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            sync()
            times.append({"total": time.perf_counter() - self.start})

    config = RLOOConfig(output_dir=str(out), per_device_train_batch_size=args.prompts * args.k, num_generations=args.k,
                        max_completion_length=args.new_tokens, temperature=1.0, top_p=1.0, top_k=0, beta=0.01, learning_rate=5e-4,
                        max_steps=args.warmup + args.steps, logging_strategy="no", save_strategy="no", report_to=[],
                        use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(), disable_tqdm=True, seed=0)
    trainer = RLOOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=Dataset.from_dict({"prompt": prompts}),
                          processing_class=tokenizer, peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS), callbacks=[Timing()])
    trainer.train()
    return times[args.warmup:]


def _mean(steps: list[dict], key: str) -> float:
    return statistics.mean(s[key] for s in steps)


def _median(runs: list[list[dict]]) -> list[dict]:
    """The run (list of timed steps) with the median mean step time."""
    return sorted(runs, key=lambda r: _mean(r, "total"))[len(runs) // 2]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step")
    p.add_argument("--k", type=int, default=4, help="samples per prompt")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="runs per side, alternating; the median run is reported")
    p.add_argument("--no-trl", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from rlhf.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = save_random_llama(args.shape, tmp / "policy", max_positions=1024)
        generate(tmp / "data", seed=0, n_train_prompts=40, n_val_prompts=8)
        rm = make_reward_model(model_dir, tmp / "data", tmp / "rm")
        with_trl = not args.no_trl and importlib.util.find_spec("trl") is not None
        ours_runs, trl_runs = [], []
        for rep in range(args.repeats):  # alternate: a shared machine's load drifts over time
            order = ["ours", "trl"] if rep % 2 == 0 else ["trl", "ours"]
            for name in order:
                if name == "ours":
                    ours_runs.append(run_ours(model_dir, rm, tmp / "data", args, tmp / f"ours{rep}"))
                elif with_trl:
                    trl_runs.append(run_trl(model_dir, rm, tmp / "data", args, tmp / f"trl{rep}"))
        ours = _median(ours_runs)
        report = {"device": device_name(), "shape": args.shape, "prompts": args.prompts, "k": args.k, "new_tokens": args.new_tokens,
                  "steps": args.steps, "repeats": args.repeats, "ours": {k: _mean(ours, k) for k in ("generate", "score", "train", "total")}}
        if with_trl:
            report["trl_rloo"] = {"total": _mean(_median(trl_runs), "total")}
            report["ratio trl/ours step time"] = report["trl_rloo"]["total"] / report["ours"]["total"]
    o = report["ours"]
    print(f"device: {report['device']}; shape {args.shape}; {args.prompts} prompts x K={args.k}, {args.new_tokens} new tokens; mean of {args.steps} steps")
    print(f"ours: step {o['total']:.3f}s = generate {o['generate']:.3f}s + score {o['score']:.3f}s + train {o['train']:.3f}s")
    if "trl_rloo" in report:
        print(f"trl RLOOTrainer: step {report['trl_rloo']['total']:.3f}s; ratio trl/ours step time: {report['ratio trl/ours step time']:.2f}x")
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
