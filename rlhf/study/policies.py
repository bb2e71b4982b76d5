"""The study's policy stage: REINFORCE against study RMs at several KL coefficients, and DPO, judged by the truth.

For one training seed, every RM of `POLICY_RMS` (its ExPO row as a written checkpoint at the α chosen on validation)
trains a REINFORCE policy (configs/align/study_reinforce.yaml) at each of `KL_COEFS`, and each of `DPO_LOSSES` trains a DPO
policy (configs/dpo/study_dpo.yaml). Every policy and the base model then sample K responses to each test prompt (the
same seed per policy); each response gets its gold quality (`rlhf.study.gold`), its proxy score under the policy's
own RM and, against the base model, its sequence KL (Σ over response tokens of log π − log π_ref, the k1 estimate).
Gold and proxy are also given as gains over the base model's, so RMs of different scales compare (Gao et al. 2022).
Left out: several seeds per policy, intermediate checkpoints (each point of the curve is one KL coefficient).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from rlhf.align.rewards import RewardSource
from rlhf.study.gold import gold_quality

POLICY_RMS: tuple[str, ...] = ("regression-helpfulness", "bt", "scaled-bt", "scaled-bt-init", "scaled-bt-init-expo")
KL_COEFS: tuple[float, ...] = (0.01, 0.1)
DPO_LOSSES: tuple[str, ...] = ("dpo", "margin_dpo", "scaled_dpo")


class GoldReward(RewardSource):
    """The gold quality q of each (prompt, response) (`rlhf.study.gold.gold_quality`) as a reward source."""

    def score(self, prompts, responses) -> torch.Tensor:
        return torch.tensor([gold_quality(p, r).quality for p, r in zip(prompts, responses, strict=True)], dtype=torch.float32)


def _common(config: str, run_dir: Path, model: str, seed: int, max_steps: int | None) -> list[str]:
    args = ["fit", "--config", f"configs/{config}.yaml", f"--seed_everything={seed}", f"--trainer.default_root_dir={run_dir}",
            f"--trainer.logger.init_args.save_dir={run_dir}", f"--checkpoint.dirpath={run_dir / 'checkpoint'}", f"--model.backbone.name_or_path={model}"]
    return args + ([f"--trainer.max_steps={max_steps}"] if max_steps is not None else [])


def write_expo_checkpoint(weak: Path, strong: Path, alpha: float, out: Path) -> Path:
    """The ExPO RM as a checkpoint directory (exact extrapolation, `rlhf.reward.expo`), with the strong one's config.yaml."""
    from rlhf.reward.expo import extrapolate_checkpoints

    extrapolate_checkpoints(str(weak), str(strong), str(out), alpha)
    shutil.copy(strong / "config.yaml", out / "config.yaml")
    return out


def train_policies(rms: dict[str, Path], out: Path, data_dir: Path, model: str, seed: int, max_steps: int | None = None,
                   kl_coefs: tuple[float, ...] = KL_COEFS, dpo_losses: tuple[str, ...] = DPO_LOSSES, retrain: bool = False) -> dict[str, dict[str, Any]]:
    """Train every REINFORCE and DPO policy (a finished run of the same arguments and inputs is reused,
    `rlhf.training.reuse`); {policy name: {"checkpoint", "rm", "kl_coef" or "loss"}}."""
    from rlhf.cli import align_main, dpo_main
    from rlhf.training.reuse import train_once

    policies: dict[str, dict[str, Any]] = {}
    for rm, path in rms.items():
        for kl in kl_coefs:
            run_dir = out / f"reinforce-{rm}-kl{kl:g}"
            train_once(align_main, _common("align/study_reinforce", run_dir, model, seed, max_steps) + [f"--model.reward.init_args.path={path}", f"--model.objective.kl_coef={kl}",
                                                                                        f"--data.path={data_dir / 'preference_train.jsonl'}"], run_dir, retrain)
            policies[run_dir.name] = {"checkpoint": run_dir / "checkpoint", "rm": rm, "kl_coef": kl}
    for loss in dpo_losses:
        run_dir = out / f"dpo-{loss}"
        train_once(dpo_main, _common("dpo/study_dpo", run_dir, model, seed, max_steps) + [f"--model.loss={loss}", f"--data.train_path={data_dir / 'preference_train.jsonl'}",
                                                                               f"--data.val_path={data_dir / 'preference_val.jsonl'}"], run_dir, retrain)
        policies[run_dir.name] = {"checkpoint": run_dir / "checkpoint", "loss": loss}
    return policies


@torch.no_grad()
def judge(policy: torch.nn.Module, is_base: bool, data, tokenizer, generation, scorers: dict[str, Any], seed: int) -> dict[str, Any]:
    """Sample K responses per prompt; gold q, every scorer's score and the sequence KL to the base model of each."""
    from rlhf.align.rollout import make_rollout
    from rlhf.models.policy import eos_token_ids, reference_logprobs, sample, token_logprobs

    torch.manual_seed(seed)
    eos = eos_token_ids(policy, tokenizer)
    gold, kl, proxy, prompts, responses = [], [], {k: [] for k in scorers}, [], []
    for batch in data.train_dataloader():
        rollout = make_rollout(sample(policy, batch, generation, eos, tokenizer.pad_token_id), batch, generation.num_samples, tokenizer, GoldReward(), eos)
        gold.append(rollout.scores.cpu())
        for name, scorer in scorers.items():
            proxy[name].append(scorer.score(rollout.prompts, rollout.responses).float())
        if is_base:
            kl.append(torch.zeros(len(rollout.responses)))
        else:
            ids, mask, start = rollout.sequences, rollout.attention_mask, rollout.prompt_length
            diff = token_logprobs(policy, ids, mask, start, generation.temperature) - reference_logprobs(policy, ids, mask, start, generation.temperature)
            kl.append((diff * rollout.response_mask).sum(-1))
        prompts += rollout.prompts
        responses += rollout.responses
    return {"gold": torch.cat(gold), "kl": torch.cat(kl), "proxy": {k: torch.cat(v) for k, v in proxy.items()}, "prompts": prompts, "responses": responses}


def _mean_interval(values: torch.Tensor, n_boot: int) -> list[float]:
    from dataclasses import astuple

    from rlhf.study.bootstrap import paired_interval

    return list(astuple(paired_interval(lambda v, idx: v.double()[idx].mean(-1), [values], None, len(values), n_boot)))


def matched_gold(points: dict[str, list[tuple[float, float]]]) -> tuple[float, dict[str, float]]:
    """Gold at a matched KL: each RM's (KL, gold) points, the base's (0, gold) among them, linearly interpolated at
    the largest KL every RM reaches (the smallest of the RMs' largest KLs). Returns (that KL, {rm: gold there})."""
    kl = min(max(k for k, _ in pts) for pts in points.values())
    out = {}
    for rm, pts in points.items():
        pts = sorted(pts)
        for (k0, g0), (k1, g1) in zip(pts, pts[1:]):
            if k0 <= kl <= k1:
                out[rm] = g0 if k1 == k0 else g0 + (g1 - g0) * (kl - k0) / (k1 - k0)
                break
        else:
            out[rm] = pts[0][1]  # a single point (only the base)
    return kl, out


def run_policy_stage(seed_dir: Path, data_dir: Path, model: str, seed: int, expo_alpha: float, n_prompts: int, n_boot: int, max_steps: int | None = None,
                     kl_coefs: tuple[float, ...] = KL_COEFS, dpo_losses: tuple[str, ...] = DPO_LOSSES, retrain: bool = False) -> dict[str, Any]:
    """Train and judge every policy for one seed's RMs; the results dict the study report writes."""
    from rlhf.align.compare import load_policy
    from rlhf.align.rewards import RewardModelScore
    from rlhf.data.prompts import PromptDataModule
    from rlhf.data.templates import TemplateSpec
    from rlhf.models.backbone import load_tokenizer
    from rlhf.models.policy import GenerationSpec
    from rlhf.study.variants import variant

    rms = {name: seed_dir / name / "checkpoint" for name in POLICY_RMS if not variant(name).expo_of}
    weak, strong = variant("scaled-bt-init-expo").expo_of
    rms["scaled-bt-init-expo"] = write_expo_checkpoint(seed_dir / weak / "checkpoint", seed_dir / strong / "checkpoint", expo_alpha, seed_dir / "scaled-bt-init-expo" / "checkpoint")
    policies = train_policies(rms, seed_dir / "policies", data_dir, model, seed, max_steps, kl_coefs, dpo_losses, retrain)
    data = PromptDataModule(path=str(data_dir / "preference_test.jsonl"), split="test", tokenizer=model, template=TemplateSpec("steerlm", ""),
                            max_prompt_length=128, batch_size=16, limit=n_prompts, shuffle=False)
    data.setup("fit")
    tokenizer = load_tokenizer(model)
    generation = GenerationSpec(num_samples=4, max_new_tokens=64, temperature=1.0, top_k=0, top_p=1.0)
    scorers = {name: RewardModelScore(str(path), batch_size=64) for name, path in rms.items()}
    for scorer in scorers.values():
        scorer.build()
    base = judge(load_policy(None, model), True, data, tokenizer, generation, scorers, seed)
    rows = {"base": {"gold": _mean_interval(base["gold"], n_boot), "kl": 0.0, "proxy": {k: float(v.mean()) for k, v in base["proxy"].items()}}}
    examples = {"base": list(zip(base["prompts"], base["responses"], base["gold"].tolist()))[:: generation.num_samples][:3]}
    for name, p in policies.items():
        own = {p["rm"]: scorers[p["rm"]]} if "rm" in p else {}
        res = judge(load_policy(str(p["checkpoint"]), model), False, data, tokenizer, generation, own, seed)
        row = {k: v for k, v in p.items() if k != "checkpoint"} | {"gold": _mean_interval(res["gold"], n_boot), "gold_gain": _mean_interval(res["gold"] - base["gold"], n_boot), "kl": float(res["kl"].mean())}
        if "rm" in p:
            row["proxy_gain"] = float(res["proxy"][p["rm"]].mean()) - rows["base"]["proxy"][p["rm"]]
        rows[name] = row
        examples[name] = list(zip(res["prompts"], res["responses"], res["gold"].tolist()))[:: generation.num_samples][:3]
        print(f"[study] policy {name}: gold {row['gold'][0]:.3f}, KL {row['kl']:.2f}", flush=True)
    points = {rm: [(0.0, rows["base"]["gold"][0])] + [(r["kl"], r["gold"][0]) for r in rows.values() if r.get("rm") == rm] for rm in rms}
    kl, gold_at = matched_gold(points)
    return {"seed": seed, "expo_alpha": expo_alpha, "n_prompts": len(base["prompts"]) // generation.num_samples, "samples_per_prompt": generation.num_samples,
            "kl_coefs": list(kl_coefs), "policies": rows, "matched_kl": kl, "gold_at_matched_kl": gold_at, "best_rm_at_matched_kl": max(gold_at, key=gold_at.get), "examples": examples}


def plot_policies(result: dict[str, Any], out: Path) -> Path:
    """Gold gain and proxy-RM gain over the base model against KL, one line per RM (Gao et al. 2022); DPO as points."""
    from rlhf.eval.plots import plt, save_figure

    rows = result["policies"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for rm in POLICY_RMS:
        pts = sorted((r["kl"], r["gold_gain"][0], r["proxy_gain"]) for r in rows.values() if r.get("rm") == rm)
        if pts:
            axes[0].plot([0] + [p[0] for p in pts], [0] + [p[1] for p in pts], "o-", label=rm)
            axes[1].plot([0] + [p[0] for p in pts], [0] + [p[2] for p in pts], "o-", label=rm)
    for name, r in rows.items():
        if "loss" in r:
            axes[0].plot([r["kl"]], [r["gold_gain"][0]], "k^")
            axes[0].annotate(r["loss"], (r["kl"], r["gold_gain"][0]), fontsize=7)
    for ax, title in zip(axes, ("Gold quality gain over the base policy", "Proxy RM score gain over the base policy")):
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("KL(π ‖ π_base) per response (nats, k1 on test samples)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save_figure(fig, out)


def policy_markdown(result: dict[str, Any]) -> str:
    """The policy table: gold quality with its interval over samples, KL, proxy gain; the matched-KL comparison."""
    lines = ["| Policy | RM / loss | KL coef. | KL | Gold q [95%] | Gold gain vs base [95%] | Proxy gain |", "|---|---|---|---|---|---|---|"]
    for name, r in result["policies"].items():
        g = r["gold"]
        gain = f"{r['gold_gain'][0]:+.3f} [{r['gold_gain'][1]:+.3f}, {r['gold_gain'][2]:+.3f}]" if "gold_gain" in r else "–"
        proxy = f"{r['proxy_gain']:+.3f}" if "proxy_gain" in r else "–"
        lines.append(f"| {name} | {r.get('rm', r.get('loss', '–'))} | {r.get('kl_coef', '–')} | {r['kl']:.2f} | {g[0]:.3f} [{g[1]:.3f}, {g[2]:.3f}] | {gain} | {proxy} |")
    lines += ["", f"Gold quality at a matched KL of {result['matched_kl']:.2f} nats (linear between each RM's points, base at 0): "
              + ", ".join(f"{rm} {q:.3f}" for rm, q in sorted(result["gold_at_matched_kl"].items(), key=lambda x: -x[1]))
              + f"; best: **{result['best_rm_at_matched_kl']}**."]
    return "\n".join(lines) + "\n"
