"""The study's report: per-variant intervals, the paper's orderings with verdicts, a markdown table and a PNG.

Pure functions over the per-item data `rlhf.study.evaluate.item_runs` gives for every variant and seed ({variant:
[item runs per seed]}): each metric's mean over seeds with a 95% bootstrap interval, each ordering of the paper as a
paired difference with its verdict (`rlhf.study.bootstrap`: held / reversed / unresolved by the interval), the σ
target (Mean-Var contested AUROC ≥ best scalar RM's + 0.1), and mean ± std over seeds of per-seed settings (α, λ).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import astuple
from pathlib import Path

from rlhf.eval.plots import plt, save_figure
from rlhf.study.bootstrap import Interval, accuracy, paired_interval, resampled_auroc
from rlhf.study.variants import VARIANTS

COLUMNS = (
    ("truth_accuracy", "Truth acc."),
    ("truth_accuracy_contested", "Truth acc. (contested)"),
    ("label_accuracy", "Label acc."),
    ("auroc_contested", "Div. AUROC (contested)"),
    ("auroc_labels", "Div. AUROC (labels)"),
)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), NaNs left out."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return float("nan"), float("nan")
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


def summarise(per_seed: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """{variant: {metric: (mean, std)}} over seeds."""
    return {name: {k: mean_std([m[k] for m in runs if k in m]) for k in runs[0]} for name, runs in per_seed.items() if runs}


STATS = {"truth_accuracy": accuracy, "truth_accuracy_contested": accuracy, "label_accuracy": accuracy, "auroc_contested": resampled_auroc, "auroc_labels": resampled_auroc}
"""The bootstrap statistic of each per-item metric (`rlhf.study.evaluate.item_runs`)."""

CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("Helpfulness-only regression beats 5-attribute regression (93.0 vs 92.4)", "regression-helpfulness", "regression-5attr", "truth_accuracy"),
    ("Scaled BT beats regular BT, from scratch (92.7 vs 91.5)", "scaled-bt", "bt", "truth_accuracy"),
    ("Scaled BT beats margin BT, from scratch (92.7 vs 91.5)", "scaled-bt", "margin-bt", "truth_accuracy"),
    ("Init. from regression beats scratch, regular BT (92.7 vs 91.5)", "bt-init", "bt", "truth_accuracy"),
    ("Init. from regression beats scratch, margin BT (93.0 vs 91.5)", "margin-bt-init", "margin-bt", "truth_accuracy"),
    ("Init. from regression beats scratch, scaled BT (93.7 vs 92.7)", "scaled-bt-init", "scaled-bt", "truth_accuracy"),
    ("Scaled BT from regression beats regular BT from regression (93.7 vs 92.7)", "scaled-bt-init", "bt-init", "truth_accuracy"),
    ("Scaled BT from regression beats margin BT from regression (93.7 vs 93.0)", "scaled-bt-init", "margin-bt-init", "truth_accuracy"),
    ("Scaled BT from regression beats helpfulness regression (93.7 vs 93.0)", "scaled-bt-init", "regression-helpfulness", "truth_accuracy"),
    ("Scaled BT from regression beats 5-attribute regression (93.7 vs 92.4)", "scaled-bt-init", "regression-5attr", "truth_accuracy"),
    ("ExPO on top adds (94.1 vs 93.7)", "scaled-bt-init-expo", "scaled-bt-init", "truth_accuracy"),
    ("Mean-Var divergence AUROC beats BT's (HS2: 0.582 vs 0.482), by the annotation labels", "mean-var", "bt", "auroc_labels"),
    ("Mean-Var divergence AUROC beats BT's, against the contested truth", "mean-var", "bt", "auroc_contested"),
)
"""The paper's orderings (spec §5.1, §7.3) as (claim, A, B, metric): "A beats B on metric"."""

SCALAR = tuple(v.name for v in VARIANTS if v.name != "mean-var")


def intervals(runs: dict[str, list[dict]], n_items: int, n_boot: int = 2000, seed: int = 0) -> dict[str, dict[str, Interval]]:
    """{variant: {metric: mean over seeds with its 95% bootstrap interval}}; runs[variant][s] = item_runs of seed s."""
    return {name: {m: paired_interval(STATS[m], [r[m] for r in per], None, n_items, n_boot, seed) for m in STATS} for name, per in runs.items() if per}


def orderings(runs: dict[str, list[dict]], n_items: int, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Each claim of `CLAIMS` whose variants ran: A − B paired over items and seeds, with its verdict."""
    out = []
    for claim, a, b, m in CLAIMS:
        if runs.get(a) and runs.get(b):
            iv = paired_interval(STATS[m], [r[m] for r in runs[a]], [r[m] for r in runs[b]], n_items, n_boot, seed)
            out.append({"claim": claim, "a": a, "b": b, "metric": m, "difference": list(astuple(iv)), "verdict": iv.verdict})
    return out


def sigma_target(runs: dict[str, list[dict]], table: dict[str, dict[str, Interval]], n_items: int, n_boot: int = 2000, seed: int = 0, margin: float = 0.1) -> dict | None:
    """Mean-Var contested AUROC minus the best scalar RM's (by point estimate), paired; met when its low end ≥ margin."""
    scalars = [n for n in SCALAR if n in table]
    if "mean-var" not in table or not scalars:
        return None
    best = max(scalars, key=lambda n: table[n]["auroc_contested"].estimate)
    iv = paired_interval(resampled_auroc, [r["auroc_contested"] for r in runs["mean-var"]], [r["auroc_contested"] for r in runs[best]], n_items, n_boot, seed)
    return {"best_scalar": best, "difference": list(astuple(iv)), "margin": margin, "met": iv.low >= margin}


def _cell(iv: Interval | None, metric: str) -> str:
    if iv is None or math.isnan(iv.estimate):
        return "–"
    if metric.startswith("auroc"):
        return f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"
    return f"{100 * iv.estimate:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]"


def _difference(check: dict) -> str:
    d, lo, hi = check["difference"]
    if check["metric"].startswith("auroc"):
        return f"{check['metric']}: {check['a']} − {check['b']} = {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return f"{check['metric']}: {check['a']} − {check['b']} = {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points"


def markdown(table: dict[str, dict[str, Interval]], checks: list[dict], summary: dict[str, dict[str, tuple[float, float]]], target: dict | None = None) -> str:
    """The results table (paper's numbers beside ours, 95% intervals), the per-seed settings and the orderings."""
    head = "| Variant | Paper RewardBench | Paper Div. AUROC | " + " | ".join(t for _, t in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for v in VARIANTS:
        if v.name not in table:
            continue
        cells = [_cell(table[v.name].get(k), k) for k, _ in COLUMNS]
        paper_rb = f"{v.paper['rewardbench']:.1f}" if "rewardbench" in v.paper else "–"
        paper_auc = f"{v.paper['auroc_labels']:.3f}" if "auroc_labels" in v.paper else "–"
        lines.append(f"| {v.label} | {paper_rb} | {paper_auc} | " + " | ".join(cells) + " |")
    notes = [
        ("scaled-bt-init-expo", "alpha", "ExPO α picked on validation truth accuracy"),
        ("mean-var", "lambda", "Mean-Var λ picked on validation contested AUROC"),
        ("mean-var", "sigma_ratio_contested", "Mean-Var mean σ on contested pairs / on the others"),
        ("mean-var", "auroc_contested_scalar", "Mean-Var contested AUROC with λ = 0 (its μ alone)"),
    ]
    lines += ["", "Cells: mean over seeds [95% bootstrap interval over test items and seeds]. Per-seed settings (mean ± std over seeds):", ""]
    lines += [f"- {text}: {summary[v][k][0]:.3f} ± {summary[v][k][1]:.3f}" for v, k, text in notes if k in summary.get(v, {})]
    if target is not None:
        d, lo, hi = target["difference"]
        lines += ["", f"σ target: Mean-Var contested AUROC − best scalar RM's ({target['best_scalar']}) = {d:+.3f} [{lo:+.3f}, {hi:+.3f}]; "
                  f"target ≥ +{target['margin']:.1f} at the interval's low end: **{'met' if target['met'] else 'not met'}**"]
    lines += ["", "Orderings of the paper, paired over test items and seeds (A − B with its 95% interval; held: above 0, reversed: below 0, unresolved: contains 0):", ""]
    lines += [f"- **{c['verdict']}**: {c['claim']}. {_difference(c)}" for c in checks]
    return "\n".join(lines) + "\n"


def plot(table: dict[str, dict[str, Interval]], out: str | Path) -> Path:
    """Two panels, mean over seeds with 95% bootstrap intervals: truth accuracy per variant, contested divergence AUROC."""
    names = [v.name for v in VARIANTS if v.name in table]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, (metric, title, scale, floor) in zip(axes, (("truth_accuracy", "Accuracy against the latent truth (%)", 100, 50), ("auroc_contested", "Divergence AUROC: contested vs agreed prompts", 1, 0.5))):
        ivs = [table[n][metric] for n in names]
        means = [scale * iv.estimate for iv in ivs]
        err = [[scale * (iv.estimate - iv.low) for iv in ivs], [scale * (iv.high - iv.estimate) for iv in ivs]]
        colors = ["tab:green" if n.startswith("regression") else "tab:purple" if n == "mean-var" else "tab:orange" if "init" in n else "tab:blue" for n in names]
        ax.bar(range(len(names)), means, yerr=err, color=colors, capsize=3)
        ax.axhline(floor, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        lo = min(scale * iv.low for iv in ivs)
        ax.set_ylim(min(floor, lo) - 0.05 * scale, None)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out)
