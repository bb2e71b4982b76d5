"""The study's report: mean ± std over seeds, the paper's orderings checked one by one, a markdown table and a PNG.

Pure functions over the per-seed metric dicts that `rlhf.study.run` collects ({variant: [metrics per seed]}).
An ordering "holds" when the means are in the paper's order; the gap and the seeds' spread are reported with it,
so a reader can see when a gap is inside the noise. Left out: significance tests (3 seeds are too few).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from rlhf.plots import plt, save_figure
from rlhf.study.variants import VARIANTS

COLUMNS = (
    ("truth_accuracy", "Truth acc."),
    ("truth_accuracy_contested", "Truth acc. (contested)"),
    ("label_accuracy", "Label acc."),
    ("pearson_q", "Pearson(r, q)"),
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


def _gap(summary: dict, a: str, b: str, metric: str) -> tuple[bool, str]:
    (ma, sa), (mb, sb) = summary[a][metric], summary[b][metric]
    if metric.startswith("auroc"):
        return ma > mb, f"{a} {ma:.3f} vs {b} {mb:.3f} ({ma - mb:+.3f}; seed std {sa:.3f} / {sb:.3f})"
    return ma > mb, f"{a} {100 * ma:.1f} vs {b} {100 * mb:.1f} ({100 * (ma - mb):+.1f} points; seed std {100 * sa:.1f} / {100 * sb:.1f})"


def orderings(summary: dict[str, dict[str, tuple[float, float]]], metric: str = "truth_accuracy") -> list[tuple[str, bool, str]]:
    """The paper's orderings (spec §5.1, §7.3) as (claim, held, numbers), on `metric` unless the claim says otherwise."""
    checks = [
        ("Helpfulness-only regression beats 5-attribute regression (93.0 vs 92.4)", "regression-helpfulness", "regression-5attr", metric),
        ("Scaled BT beats regular BT, from scratch (92.7 vs 91.5)", "scaled-bt", "bt", metric),
        ("Scaled BT beats margin BT, from scratch (92.7 vs 91.5)", "scaled-bt", "margin-bt", metric),
        ("Init. from regression beats scratch, regular BT (92.7 vs 91.5)", "bt-init", "bt", metric),
        ("Init. from regression beats scratch, margin BT (93.0 vs 91.5)", "margin-bt-init", "margin-bt", metric),
        ("Init. from regression beats scratch, scaled BT (93.7 vs 92.7)", "scaled-bt-init", "scaled-bt", metric),
        ("Scaled BT from regression beats regular BT from regression (93.7 vs 92.7)", "scaled-bt-init", "bt-init", metric),
        ("Scaled BT from regression beats margin BT from regression (93.7 vs 93.0)", "scaled-bt-init", "margin-bt-init", metric),
        ("Scaled BT from regression beats both regressions (93.7 vs 93.0)", "scaled-bt-init", "regression-helpfulness", metric),
        ("ExPO on top adds (94.1 vs 93.7)", "scaled-bt-init-expo", "scaled-bt-init", metric),
        ("Mean-Var divergence AUROC beats BT's (HS2: 0.582 vs 0.482), by the annotation labels", "mean-var", "bt", "auroc_labels"),
        ("Mean-Var divergence AUROC beats BT's, against the contested truth", "mean-var", "bt", "auroc_contested"),
    ]
    out = []
    for claim, a, b, m in checks:
        if a in summary and b in summary and m in summary[a] and m in summary[b]:
            held, numbers = _gap(summary, a, b, m)
            out.append((claim, held, f"{m}: {numbers}"))
    return out


def _cell(pair: tuple[float, float] | None, scale: float = 100.0) -> str:
    if pair is None or math.isnan(pair[0]):
        return "–"
    return f"{scale * pair[0]:.1f} ± {scale * pair[1]:.1f}" if scale == 100.0 else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def markdown(summary: dict[str, dict[str, tuple[float, float]]], checks: list[tuple[str, bool, str]]) -> str:
    """The results table (paper's numbers beside ours) and the orderings list."""
    head = "| Variant | Paper RewardBench | Paper Div. AUROC | " + " | ".join(t for _, t in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for v in VARIANTS:
        if v.name not in summary:
            continue
        row = summary[v.name]
        cells = [_cell(row.get(k), 1.0 if k.startswith(("pearson", "auroc")) else 100.0) for k, _ in COLUMNS]
        paper_rb = f"{v.paper['rewardbench']:.1f}" if "rewardbench" in v.paper else "–"
        paper_auc = f"{v.paper['auroc_labels']:.3f}" if "auroc_labels" in v.paper else "–"
        lines.append(f"| {v.label} | {paper_rb} | {paper_auc} | " + " | ".join(cells) + " |")
    notes = [
        ("scaled-bt-init-expo", "alpha", "ExPO α picked on validation truth accuracy"),
        ("mean-var", "lambda", "Mean-Var λ picked on validation contested AUROC"),
        ("mean-var", "sigma_ratio_contested", "Mean-Var mean σ on contested pairs / on the others"),
        ("mean-var", "auroc_contested_scalar", "Mean-Var contested AUROC with λ = 0 (its μ alone)"),
    ]
    lines += [""] + [f"- {text}: {summary[v][k][0]:.3f} ± {summary[v][k][1]:.3f}" for v, k, text in notes if k in summary.get(v, {})]
    lines += ["", "Orderings of the paper (on the test split's truth accuracy unless named):", ""]
    lines += [f"- {'**held**' if held else '**did not hold**'}: {claim}. {numbers}" for claim, held, numbers in checks]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict[str, tuple[float, float]]], out: str | Path) -> Path:
    """Two panels, mean ± std over seeds: truth accuracy per variant, and contested-vs-agreed divergence AUROC."""
    names = [v.name for v in VARIANTS if v.name in summary]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, (metric, title, scale, floor) in zip(axes, (("truth_accuracy", "Accuracy against the latent truth (%)", 100, 50), ("auroc_contested", "Divergence AUROC: contested vs agreed prompts", 1, 0.5))):
        means = [scale * summary[n][metric][0] for n in names]
        stds = [scale * summary[n][metric][1] for n in names]
        colors = ["tab:green" if n.startswith("regression") else "tab:purple" if n == "mean-var" else "tab:orange" if "init" in n else "tab:blue" for n in names]
        ax.bar(range(len(names)), means, yerr=stds, color=colors, capsize=3)
        ax.axhline(floor, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        lo = min(m - s for m, s in zip(means, stds))
        ax.set_ylim(min(floor, lo) - 0.05 * scale, None)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out)
