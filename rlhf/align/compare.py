"""Compare policies under one reward model on held-out prompts: the shape of the paper's alignment table (spec §5.3).

`python -m rlhf.align.compare --reward RM_CKPT --prompts FILE --policy NAME=CKPT ... [--base models/tiny-llama-hf]`
samples K responses per prompt from the base model and from each LoRA policy checkpoint (DPO variants, REINFORCE;
written by `TrainedWeightsCheckpoint`), with the same seed per policy, scores them with `RewardModelScore` and reports
mean reward, win rate against the base policy under the RM (sample j of prompt i against base sample j of prompt i,
ties count half) and mean response length in characters, as `compare.md` and `compare.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch
from rich.progress import Progress, TimeElapsedColumn
from torch import Tensor

from rlhf.align.rewards import RewardModelScore
from rlhf.align.rollout import make_rollout
from rlhf.data.prompts import PromptDataModule
from rlhf.data.templates import TemplateSpec
from rlhf.errors import ArgumentParser, run_main
from rlhf.files import check_writable, refuse_to_replace, write_json, write_text
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_backbone, load_tokenizer
from rlhf.models.policy import GenerationSpec, eos_token_ids, sample
from rlhf.training.checkpoint import load_trained, read_meta, weights_path


def win_rate(scores: Tensor, base_scores: Tensor) -> float:
    """Fraction of paired samples whose reward beats the base's (ties count half); both (N,) in the same order."""
    return float(((scores > base_scores).float() + 0.5 * (scores == base_scores).float()).mean())


def policy_backbone(path: str, base: str | None) -> BackboneSpec:
    """The BackboneSpec stored in a policy checkpoint's metadata; `base` overrides the backbone location."""
    stored = dict(read_meta(path)["backbone"])
    lora = stored.pop("lora")
    spec = BackboneSpec(**stored, lora=LoraSpec(**{**lora, "target_modules": tuple(lora["target_modules"])}))
    return spec if base is None else dataclasses.replace(spec, name_or_path=base)


def load_policy(path: str | None, base: str) -> torch.nn.Module:
    """The base causal LM (path None) or the base + a checkpoint's LoRA weights, in eval mode."""
    if path is None:
        return load_backbone(BackboneSpec(base, attn_implementation="sdpa"), causal_lm=True).eval()
    model = load_backbone(policy_backbone(path, base), causal_lm=True)
    load_trained(model, path)
    return model.eval()


@torch.no_grad()
def evaluate_policy(model: torch.nn.Module, data: PromptDataModule, tokenizer: Any, reward: RewardModelScore, generation: GenerationSpec, seed: int,
                    progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Scores (N,), responses and prompts of K samples per prompt, prompt-major, in the data module's order.
    `progress` is called after each batch."""
    torch.manual_seed(seed)
    eos = eos_token_ids(model, tokenizer)
    scores, responses, prompts = [], [], []
    for batch in data.train_dataloader():
        if progress is not None:
            progress()
        rollout = make_rollout(sample(model, batch, generation, eos, tokenizer.pad_token_id), batch, generation.num_samples, tokenizer, reward, eos)
        scores.append(rollout.scores.cpu())
        responses += rollout.responses
        prompts += rollout.prompts
    return {"scores": torch.cat(scores), "responses": responses, "prompts": prompts}


def summarise(name: str, result: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    lengths = [len(r) for r in result["responses"]]
    return {"policy": name, "mean_reward": round(float(result["scores"].mean()), 4),
            "win_rate_vs_base": round(win_rate(result["scores"], base["scores"]), 4),
            "mean_length_chars": round(sum(lengths) / len(lengths), 1), "samples": len(lengths)}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| Policy | Mean RM reward | Win rate vs base (RM) | Mean resp. length (chars) |", "|---|---|---|---|"]
    lines += [f"| {r['policy']} | {r['mean_reward']:.3f} | {100 * r['win_rate_vs_base']:.1f}% | {r['mean_length_chars']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Evaluate base + every --policy; write compare.md / compare.json under args.out; return the table rows."""
    check_writable(args.out, "directory")  # before any model loads
    policies = [("base", None)] + [tuple(p.split("=", 1)) for p in args.policy]
    for _, path in policies[1:]:
        weights_path(path)  # a missing checkpoint fails now, before any model loads
    refuse_to_replace(Path(args.out) / "compare.json", args.overwrite, "a policy comparison")
    tokenizer = load_tokenizer(args.base)
    data = PromptDataModule(path=args.prompts, split=args.split, tokenizer=args.base, template=TemplateSpec(args.template, args.system),
                            max_prompt_length=args.max_prompt_length, batch_size=args.batch_size, limit=args.n_prompts, shuffle=False)
    data.setup("fit")
    reward = RewardModelScore(args.reward)
    reward.build()
    generation = GenerationSpec(num_samples=args.k, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn()) as bar:
        task = bar.add_task("sampling and scoring", total=len(policies) * len(data.train_dataloader()))
        results = {name: evaluate_policy(load_policy(path, args.base), data, tokenizer, reward, generation, args.seed, lambda: bar.advance(task))
                   for name, path in policies}
    rows = [summarise(name, results[name], results["base"]) for name, _ in policies]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "compare.md", markdown_table(rows))
    examples = {name: [{"prompt": p, "response": r, "score": round(float(s), 3)} for p, r, s in
                       list(zip(res["prompts"], res["responses"], res["scores"]))[:: args.k][:3]] for name, res in results.items()}
    write_json(out / "compare.json", {"settings": vars(args), "rows": rows, "examples": examples})
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reward", required=True, help="reward-model checkpoint or export (RewardModelScore)")
    p.add_argument("--prompts", required=True, help="JSONL/Parquet of held-out prompts: a 'prompt' field, 'messages', or pairs in any rlhf.data.formats format")
    p.add_argument("--policy", action="append", default=[], metavar="NAME=PATH", help="a LoRA policy checkpoint (repeatable)")
    p.add_argument("--base", default="models/tiny-llama-hf", help="base causal LM (the policies' backbone)")
    p.add_argument("--split", default="val", help="keep rows of this split (rows without a split field are kept)")
    p.add_argument("--n-prompts", type=int, default=32)
    p.add_argument("--k", type=int, default=4, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--template", default="steerlm", choices=["steerlm", "chat"])
    p.add_argument("--system", default="")
    p.add_argument("--max-prompt-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/compare", help="directory for compare.md and compare.json")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --out (default: refuse)")
    args = p.parse_args(argv)
    if any("=" not in s for s in args.policy) or any(s.split("=", 1)[0] == "base" for s in args.policy):
        p.error("--policy takes NAME=PATH, and NAME 'base' is reserved")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = compare(args)
    print(markdown_table(rows), end="")
    print(f"written to {Path(args.out) / 'compare.md'} and compare.json")


if __name__ == "__main__":
    run_main(main)
