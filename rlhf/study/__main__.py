"""`python -m rlhf.study`: the reproduction study of the paper's RM table (spec §5.1), of the mean-variance RM (§7)
and of RM-guided policies judged by the world's truth.

One command: writes the study world (rlhf/study/world.py, parameters fixed in `WorldSpec`), converts the shipped tiny
Llama if needed, then for every seed trains the nine variants of the paper's table plus the mean-variance RM with
train.py's CLI (configs/study/*.yaml), scores each on the validation and test splits, picks ExPO's α (exact
extrapolation, `rlhf.reward.expo`) and the mean-variance λ on validation, and compares the variants on test against the
latent truth, paired over test items and seeds with 95% bootstrap intervals (`rlhf.study.bootstrap`). The policy
stage (`rlhf.study.policies`, first seed) trains REINFORCE policies against five RMs at two KL coefficients and the DPO
variants, and judges them with the gold scorer. Writes results.json, scores.safetensors (every test reward), study.md,
study.png and policies.png under --results. Left out: RewardBench (256-character context), the classification RM.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from dataclasses import asdict, astuple, replace
from pathlib import Path

import torch

from rlhf.errors import ArgumentParser, run_main
from rlhf.files import write_json, write_text, write_with
from rlhf.study.evaluate import PairRewards
from rlhf.study.policies import DPO_LOSSES, KL_COEFS, POLICY_RMS
from rlhf.study.variants import EXPO_ALPHAS, VARIANTS, Variant

DEFAULT_MODEL = "models/tiny-llama-hf"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m rlhf.study", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds (the world is fixed)")
    p.add_argument("--out", type=Path, default=Path("runs/study"), help="data, checkpoints and logs")
    p.add_argument("--results", type=Path, default=Path("docs/results/study"), help="results.json, study.md, study.png")
    p.add_argument("--model", default=DEFAULT_MODEL, help="backbone (the default is converted from data/tiny-llama if missing)")
    p.add_argument("--variants", nargs="+", default=[v.name for v in VARIANTS], help="subset of variants (dependencies are added)")
    p.add_argument("--world-size", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="override the world's prompts per split (smoke runs)")
    p.add_argument("--max-steps", type=int, default=None, help="cap every training run (smoke runs)")
    p.add_argument("--max-epochs", type=int, default=None, help="override every config's epochs")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a shared machine; more threads oversubscribe its cores)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates of every interval")
    p.add_argument("--policy-prompts", type=int, default=64, help="test prompts each policy answers (0: skip the policy stage)")
    p.add_argument("--kl-coefs", type=float, nargs="+", default=list(KL_COEFS), help="REINFORCE KL coefficients of the policy stage")
    p.add_argument("--dpo-losses", nargs="+", default=list(DPO_LOSSES), choices=list(DPO_LOSSES), help="DPO variants of the policy stage")
    p.add_argument("--retrain", action="store_true", help="train every RM again (default: reuse a run whose train.py arguments match, e.g. after a stopped study)")
    return p.parse_args(argv)


def _with_dependencies(names: list[str]) -> list[Variant]:
    from rlhf.study.variants import variant

    wanted = set(names)
    for name in names:
        v = variant(name)
        wanted |= {v.init_from} if v.init_from else set()
        wanted |= set(v.expo_of or ())
    return [v for v in VARIANTS if v.name in wanted]


def train_args(v: Variant, seed: int, run_dir: Path, data_dir: Path, model: str, init_from: Path | None, max_steps: int | None, max_epochs: int | None = None) -> list[str]:
    """train.py arguments for one variant and seed."""
    kind = "ratings" if v.config == "regression" else "preference"
    args = [
        "fit", "--config", f"configs/study/{v.config}.yaml", f"--seed_everything={seed}",
        f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}",
        f"--checkpoint.dirpath={run_dir / 'checkpoint'}", "--checkpoint.overwrite=true", f"--model.backbone.name_or_path={model}",
        f"--data.init_args.train_path={data_dir / f'{kind}_train.jsonl'}", f"--data.init_args.val_path={data_dir / f'{kind}_val.jsonl'}",
        *v.overrides,
    ]
    if init_from is not None:
        args.append(f"--model.init_from={init_from}")
    if max_steps is not None:
        args.append(f"--trainer.max_steps={max_steps}")
    if max_epochs is not None:
        args.append(f"--trainer.max_epochs={max_epochs}")
    return args


def _evaluate(path: Path, truth: dict, expo_weak: Path | None = None) -> tuple[dict[str, float], PairRewards]:
    """Test metrics and test rewards of one checkpoint; mean-variance λ and ExPO α chosen on the validation split."""
    from rlhf.reward.expo import extrapolated_scorers
    from rlhf.reward.score import load_scorer
    from rlhf.study.evaluate import STUDY_LAMBDA_GRID, score_truth_pairs, truth_metrics, tune_lambda

    def test(model, tokenizer, settings, lam: float | None = None, extra: dict | None = None) -> tuple[dict[str, float], PairRewards]:
        rewards = score_truth_pairs(model, tokenizer, settings, truth["test"]["rows"])
        return truth_metrics(rewards, truth["test"]["pairs"], lam) | (extra or {}), rewards

    if expo_weak is None:
        model, tokenizer, settings, _ = load_scorer(path)
        val = score_truth_pairs(model, tokenizer, settings, truth["val"]["rows"])
        lam = tune_lambda(val, truth["val"]["pairs"], STUDY_LAMBDA_GRID) if val.sigma is not None else None
        return test(model, tokenizer, settings, lam)
    best: tuple[float, tuple[dict[str, float], PairRewards]] | None = None
    for alpha, *scorer in extrapolated_scorers(str(expo_weak), str(path), EXPO_ALPHAS, "expo"):
        val = truth_metrics(score_truth_pairs(*scorer, truth["val"]["rows"]), truth["val"]["pairs"])
        if best is None or val["truth_accuracy"] > best[0]:  # the first best α; its test metrics are taken while it is loaded
            best = (val["truth_accuracy"], test(*scorer, extra={"alpha": alpha, "val_truth_accuracy": val["truth_accuracy"]}))
    return best[1]


def run_study(args: argparse.Namespace, argv: list[str]) -> dict:
    from safetensors.torch import save_file

    from rlhf.cli import reward_main
    from rlhf.data.rows import read_rows
    from rlhf.study.evaluate import item_runs, truth_pairs
    from rlhf.study.report import intervals, markdown, orderings, plot, sigma_target, summarise
    from rlhf.study.world import WorldSpec, write_study_world
    from rlhf.training.reuse import train_once

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    spec = WorldSpec() if args.world_size is None else replace(WorldSpec(), n_train=args.world_size[0], n_val=args.world_size[1], n_test=args.world_size[2])
    if args.model == DEFAULT_MODEL and not Path(DEFAULT_MODEL, "model.safetensors").is_file():
        from rlhf.models.llama2c import convert_llama2c

        convert_llama2c("data/tiny-llama/model.bin", "data/tiny-llama/tokenizer.model", DEFAULT_MODEL)
    files = write_study_world(args.out / "data", spec)
    truth = {}
    for split in ("val", "test"):
        rows = read_rows(files[f"truth_{split}"])
        truth[split] = {"rows": rows, "pairs": truth_pairs(rows, read_rows(files[f"preference_{split}"]))}
    variants = _with_dependencies(args.variants)
    per_seed: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    total, done, loop_start = len(args.seeds) * len(variants), 0, time.perf_counter()
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    reused = 0
    scores: dict[str, torch.Tensor] = {f"truth.{k}": getattr(truth["test"]["pairs"], k).contiguous() for k in ("q", "contested", "label_sign", "divergence")}
    for seed in args.seeds:
        for v in variants:
            t0, train_seconds = time.perf_counter(), None
            run_dir = args.out / f"seed{seed}" / v.name
            if v.expo_of:
                metrics, rewards = _evaluate(args.out / f"seed{seed}" / v.expo_of[1] / "checkpoint", truth, args.out / f"seed{seed}" / v.expo_of[0] / "checkpoint")
            else:
                init = args.out / f"seed{seed}" / v.init_from / "checkpoint" if v.init_from else None
                train_seconds = train_once(reward_main, train_args(v, seed, run_dir, args.out / "data", args.model, init, args.max_steps, args.max_epochs), run_dir, args.retrain)
                reused += train_seconds is not None
                metrics, rewards = _evaluate(run_dir / "checkpoint", truth)
            metrics["seconds"] = round(time.perf_counter() - t0 + (train_seconds or 0.0), 1)
            per_seed[v.name].append(metrics)
            runs[v.name].append(item_runs(rewards, truth["test"]["pairs"], metrics.get("lambda")))
            scores[f"{v.name}.seed{seed}.reward"] = rewards.reward.contiguous()
            if rewards.sigma is not None:
                scores[f"{v.name}.seed{seed}.sigma"] = rewards.sigma.contiguous()
            done += 1
            elapsed = time.perf_counter() - loop_start
            print(f"[study {done}/{total}, {elapsed / 60:.1f} min, ETA {elapsed / done * (total - done) / 60:.1f} min] seed {seed} {v.name}: "
                  f"truth acc {metrics['truth_accuracy']:.3f}, AUROC contested {metrics['auroc_contested']:.3f} ({metrics['seconds']} s)", flush=True)
    n_items = len(truth["test"]["rows"])
    summary = summarise(per_seed)
    table = intervals(runs, n_items, args.n_boot)
    checks = orderings(runs, n_items, args.n_boot)
    target = sigma_target(runs, table, n_items, args.n_boot)
    command = " ".join(["python -m rlhf.study", *map(shlex.quote, argv)])

    def write(policy_stage: dict | None) -> dict:  # once after the RMs (a policy-stage failure keeps them), once at the end
        wall = round(time.perf_counter() - start, 1)
        results = {
            "command": command, "seeds": args.seeds, "world": asdict(spec), "model": args.model, "wall_seconds": wall, "n_boot": args.n_boot,
            "threads": args.threads, "reused_runs": reused, "machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
            "per_seed": per_seed, "summary": {k: {m: list(v) for m, v in d.items()} for k, d in summary.items()},
            "intervals": {k: {m: list(astuple(iv)) for m, iv in d.items()} for k, d in table.items()},
            "orderings": checks, "sigma_target": target, "policies": policy_stage,
        }
        args.results.mkdir(parents=True, exist_ok=True)
        write_json(args.results / "results.json", results)
        write_with(args.results / "scores.safetensors", lambda p: save_file(scores, str(p)))
        text = markdown(table, checks, summary, target)
        png = plot(table, args.results / "study.png")
        if policy_stage is not None:
            from rlhf.study.policies import plot_policies, policy_markdown

            plot_policies(policy_stage, args.results / "policies.png")
            text += f"\n## Policies judged by the gold scorer (seed {policy_stage['seed']}, {policy_stage['n_prompts']} test prompts × {policy_stage['samples_per_prompt']} samples)\n\n" + policy_markdown(policy_stage)
        write_text(args.results / "study.md", f"# Reproduction study\n\n`{command}` (seeds {args.seeds}, {n_items} test pairs, {wall:.0f} s)\n\n{text}")
        print(f"\n{text}\nResults: {args.results / 'results.json'}\nTable:   {args.results / 'study.md'}\nPlot:    {png}\nWall: {wall:.0f} s", flush=True)
        return results

    results = write(None)
    if args.policy_prompts > 0 and set(POLICY_RMS) <= set(runs):
        from rlhf.study.policies import run_policy_stage

        seed = args.seeds[0]
        results = write(run_policy_stage(args.out / f"seed{seed}", args.out / "data", args.model, seed, per_seed["scaled-bt-init-expo"][0]["alpha"],
                                         args.policy_prompts, args.n_boot, args.max_steps, tuple(args.kl_coefs), tuple(args.dpo_losses), args.retrain))
    return results


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    threads = torch.get_num_threads()
    try:
        return run_study(_parse(argv), argv)
    finally:
        torch.set_num_threads(threads)  # --threads is for this run only (e.g. when called from a test)


if __name__ == "__main__":
    run_main(main)
