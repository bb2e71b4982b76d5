"""Reward-model training throughput: padded vs packed (this repo) vs TRL's RewardTrainer, one process, same data.

Every method trains the same random-weight Llama (`--shape`) with the same LoRA (r 16 on all 7 projections) and a
1-output head, Bradley-Terry loss, AdamW, on the same synthetic pairs (lengths uniform in [--min-len, --max-len]),
`--batch-pairs` pairs per step; each method runs `--repeats` times in rotated order and the median run (by seconds
per token) is reported. Reported per method: real (non-padding) tokens/s, pairs/s, step time, peak CUDA
memory and MFU (GPU; see bench/common.py for the FLOPs), then ratios against the padded path and against TRL.
TRL runs only when `trl` is installed (`pip install -e ".[bench]"`); its model is the same weights loaded as
`AutoModelForSequenceClassification(num_labels=1)` with peft's LoRA, fed pre-tokenised `chosen_ids`/`rejected_ids`.
Not a test: nothing here runs in `make test`. Example (CPU): OMP_NUM_THREADS=1 python bench/rm_throughput.py --shape tiny
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHAPES, Timer, device_name, lora_train_flops, peak_memory, peak_tflops, random_pairs, save_random_llama  # noqa: E402
from rlhf.data.collate import EncodedPair, collate_preferences, collate_preferences_packed  # noqa: E402
from rlhf.files import write_json  # noqa: E402
from rlhf.losses import PAIRWISE_LOSSES  # noqa: E402
from rlhf.models.backbone import BackboneSpec, LoraSpec  # noqa: E402
from rlhf.models.heads import HeadSpec  # noqa: E402
from rlhf.models.reward_model import build_reward_model  # noqa: E402

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _spec(model_dir: Path, cuda: bool) -> BackboneSpec:
    return BackboneSpec(str(model_dir), dtype="bfloat16" if cuda else "float32", attn_implementation="auto" if cuda else "sdpa",
                        lora=LoraSpec(r=16, alpha=32, target_modules=TARGETS))


def run_ours(model_dir: Path, batches: list[list[EncodedPair]], warmup: int, packing: bool) -> dict:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    torch.manual_seed(0)
    model = build_reward_model(_spec(model_dir, cuda), HeadSpec()).to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    timer, tokens, pairs = Timer(), 0, 0
    with peak_memory() as mem:
        for step, items in enumerate(batches):
            batch = (collate_preferences_packed(items) if packing else collate_preferences(items, pad_id=0)).to(device)
            timed = step >= warmup
            with timer() if timed else _null():
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    out = model(batch.tokens) if packing else model(batch.input_ids, batch.attention_mask)
                chosen, rejected = model.reward(out).float().chunk(2)
                loss = PAIRWISE_LOSSES["bt"](chosen, rejected, batch.margin)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if timed:
                tokens += sum(len(it.chosen_ids) + len(it.rejected_ids) for it in items)
                pairs += len(items)
    return {"seconds": timer.seconds, "tokens": tokens, "pairs": pairs, "steps": len(batches) - warmup, "peak_gib": mem["peak_gib"]}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_trl(model_dir: Path, batches: list[list[EncodedPair]], warmup: int) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.bfloat16 if cuda else torch.float32,
                                                               attn_implementation="sdpa" if not cuda else None)
    model.config.pad_token_id = 0
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token_id = 0
    counted = {"tokens": 0, "on": False}

    def count(module, args, kwargs):
        if counted["on"]:
            counted["tokens"] += int(kwargs["attention_mask"].sum())

    model.register_forward_pre_hook(count, with_kwargs=True)
    flat = [it for b in batches for it in b]  # the same pairs in the same order, batch_size pairs per step
    data = Dataset.from_dict({"chosen_ids": [it.chosen_ids for it in flat], "rejected_ids": [it.rejected_ids for it in flat]})
    timer = Timer()

    class Timing(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            counted["on"] = state.global_step >= warmup
            if counted["on"]:
                import time

                from bench.common import sync

                sync()
                timer.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if counted["on"]:
                import time

                from bench.common import sync

                sync()
                timer.seconds += time.perf_counter() - timer.start

    with tempfile.TemporaryDirectory() as out:
        config = RewardConfig(output_dir=out, per_device_train_batch_size=len(batches[0]), max_steps=len(batches), learning_rate=1e-4,
                              logging_strategy="no", save_strategy="no", report_to=[], use_cpu=not cuda, bf16=cuda, max_length=None,
                              disable_tqdm=True, dataloader_num_workers=0, seed=0, data_seed=0, gradient_checkpointing=False)
        peft = LoraConfig(r=16, lora_alpha=32, target_modules=list(TARGETS), task_type="SEQ_CLS")
        trainer = RewardTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=peft, callbacks=[Timing()])
        with peak_memory() as mem:
            trainer.train()
    steps = len(batches) - warmup
    return {"seconds": timer.seconds, "tokens": counted["tokens"] // 1, "pairs": steps * len(batches[0]), "steps": steps, "peak_gib": mem["peak_gib"]}


def summarise(name: str, r: dict, shape: str, mean_len: float, peak: float | None) -> dict:
    out = {"method": name, "tokens_per_s": r["tokens"] / r["seconds"], "pairs_per_s": r["pairs"] / r["seconds"],
           "step_ms": 1000 * r["seconds"] / r["steps"], "peak_gib": r["peak_gib"]}
    out["mfu"] = lora_train_flops(shape, r["tokens"], mean_len) / r["seconds"] / (peak * 1e12) if peak else None
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--steps", type=int, default=20, help="timed steps per method")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-pairs", type=int, default=8)
    p.add_argument("--min-len", type=int, default=32)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: known GPUs only)")
    p.add_argument("--repeats", type=int, default=3, help="runs per method, in rotated order; the median run is reported")
    p.add_argument("--no-trl", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    n_steps = args.warmup + args.steps
    pairs = random_pairs(n_steps * args.batch_pairs, args.min_len, args.max_len, SHAPES[args.shape]["vocab_size"])
    items = [EncodedPair(c, r, 1) for c, r in pairs]
    batches = [items[i * args.batch_pairs:(i + 1) * args.batch_pairs] for i in range(n_steps)]
    mean_len = sum(len(it.chosen_ids) + len(it.rejected_ids) for it in items) / (2 * len(items))
    peak = peak_tflops(args.peak_tflops)
    runners = {"padded": lambda d: run_ours(d, batches, args.warmup, False), "packed": lambda d: run_ours(d, batches, args.warmup, True)}
    if not args.no_trl and importlib.util.find_spec("trl") is not None:
        runners["trl RewardTrainer"] = lambda d: run_trl(d, batches, args.warmup)
    runs: dict[str, list[dict]] = {name: [] for name in runners}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_llama(args.shape, Path(tmp) / args.shape, max_positions=max(256, 2 * args.max_len))
        names = list(runners)
        for rep in range(args.repeats):  # rotate the order: a shared machine's load drifts over time
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                runs[name].append(runners[name](model_dir))
    results = [summarise(name, _median_run(rs), args.shape, mean_len, peak) for name, rs in runs.items()]
    by = {r["method"]: r for r in results}
    ratios = {"packed/padded tokens_per_s": by["packed"]["tokens_per_s"] / by["padded"]["tokens_per_s"]}
    if "trl RewardTrainer" in by:
        trl = by["trl RewardTrainer"]
        ratios["packed/trl tokens_per_s"] = by["packed"]["tokens_per_s"] / trl["tokens_per_s"]
        ratios["padded/trl tokens_per_s"] = by["padded"]["tokens_per_s"] / trl["tokens_per_s"]
        if trl["peak_gib"]:
            ratios["packed/trl peak_memory"] = by["packed"]["peak_gib"] / trl["peak_gib"]
    report = {"device": device_name(), "shape": args.shape, "batch_pairs": args.batch_pairs, "steps": args.steps, "repeats": args.repeats, "lengths": [args.min_len, args.max_len],
              "mean_len": mean_len, "padding_fraction": 1 - mean_len / _mean_padded(batches), "results": results, "ratios": ratios}
    _print(report)
    if args.json:
        write_json(args.json, report)
    return report


def _median_run(runs: list[dict]) -> dict:
    """The run with the median time (token counts are equal across our runs; TRL's depend on its shuffling)."""
    return sorted(runs, key=lambda r: r["seconds"] / max(r["tokens"], 1))[len(runs) // 2]


def _mean_padded(batches: list[list[EncodedPair]]) -> float:
    """Mean padded row length (every row of a step padded to that step's longest)."""
    return sum(max(max(len(it.chosen_ids), len(it.rejected_ids)) for it in b) for b in batches) / len(batches)


def _print(report: dict) -> None:
    print(f"device: {report['device']}; shape {report['shape']}; {report['batch_pairs']} pairs/step; lengths {report['lengths']} "
          f"(mean {report['mean_len']:.0f}, padding {100 * report['padding_fraction']:.0f}% of padded tokens)")
    print(f"{'method':<20}{'tokens/s':>12}{'pairs/s':>10}{'step ms':>10}{'peak GiB':>10}{'MFU':>8}")
    for r in report["results"]:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"{r['method']:<20}{r['tokens_per_s']:>12.0f}{r['pairs_per_s']:>10.1f}{r['step_ms']:>10.1f}{peak:>10}{mfu:>8}")
    for k, v in report["ratios"].items():
        print(f"ratio {k}: {v:.2f}x")


if __name__ == "__main__":
    main()
