"""RewardBench reports: a JSON record per model, markdown tables in the paper's layout, a bar chart of sections.

The main table is `| Model | Overall | Chat | Chat-Hard | Safety | Reasoning |` with scores ×100 to one decimal
(spec §5.1); an overall that is not the official one (a section missing) is starred and explained below the table,
and every model's truncation count is printed, never hidden. A second table gives per-subset accuracies.
Plots use matplotlib's Agg backend; nothing is shown interactively.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rlhf.eval.rewardbench_scores import SECTIONS, SUBSET_MAPPING, RewardBenchResult, section_key
from rlhf.files import write_json, write_text

COLUMNS: dict[str, str] = {"Chat": "Chat", "Chat Hard": "Chat-Hard", "Safety": "Safety", "Reasoning": "Reasoning"}


def result_json(result: RewardBenchResult) -> dict[str, Any]:
    """A JSON-ready record of one result (fractions in [0, 1])."""
    return {
        "model": result.model,
        "source": result.source,
        "overall": result.overall,
        "overall_is_official": not result.missing_sections,
        "missing_sections": list(result.missing_sections),
        "sections": {section_key(s): v for s, v in result.sections.items()},
        "subsets": result.subsets,
        "n": result.counts,
        "n_pairs": result.n_pairs,
        "truncated_pairs": result.n_truncated,
        "truncated": result.truncated,
        "notes": list(result.notes),
        "settings": result.settings,
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _cell(name: str) -> str:
    return name.replace("|", "\\|")


def truncation_line(result: RewardBenchResult) -> str:
    """"name: k of n pairs truncated to max_length (p%)", or that the count is unknown."""
    if result.n_truncated is None:
        return f"{result.model}: truncation unknown (precomputed scores without a `truncated` flag)"
    share = result.n_truncated / result.n_pairs
    return f"{result.model}: {result.n_truncated} of {result.n_pairs} pairs truncated to max_length ({share:.1%})"


def markdown_table(results: Sequence[RewardBenchResult]) -> str:
    """The paper's table, one row per model, then starred-overall explanations, truncation counts and notes."""
    lines = ["| Model | Overall | " + " | ".join(COLUMNS.values()) + " |", "|---" * (2 + len(COLUMNS)) + "|"]
    for r in results:
        star = "*" if r.missing_sections else ""
        cells = [_pct(r.sections.get(s)) for s in SECTIONS]
        lines.append(f"| {_cell(r.model)} | {_pct(r.overall)}{star} | " + " | ".join(cells) + " |")
    lines.append("")
    if any(r.missing_sections for r in results):
        lines.append("\\* mean over the sections present only, not the official overall score.")
    lines += [f"- {truncation_line(r)}" for r in results]
    lines += [f"- {r.model}: {note}" for r in results for note in r.notes if "overall is the mean" not in note]
    return "\n".join(lines) + "\n"


def subset_table(results: Sequence[RewardBenchResult]) -> str:
    """Per-subset accuracy ×100 (rows: subsets grouped by section; columns: models)."""
    lines = ["| Section | Subset | " + " | ".join(_cell(r.model) for r in results) + " |", "|---" * (2 + len(results)) + "|"]
    known = [(sec, s) for sec, members in SUBSET_MAPPING.items() for s in members]
    extra = sorted({s for r in results for s in r.subsets if all(s != k for _, k in known)})
    for section, subset in known + [("(none)", s) for s in extra]:
        if any(subset in r.subsets for r in results):
            cells = [_pct(r.subsets.get(subset)) for r in results]
            lines.append(f"| {section} | {subset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_sections(results: Sequence[RewardBenchResult], out: str | Path) -> Path:
    """Grouped bars: Overall and the four sections (×100), one bar per model, with the 50% chance line."""
    from rlhf.eval.plots import plt, save_figure

    groups = ["Overall", *SECTIONS]
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(groups) + 0.3 * len(results), 4.4 + 0.25 * (len(results) // 4)))
    for k, r in enumerate(results):
        values = [100 * r.overall] + [100 * r.sections.get(s, float("nan")) for s in SECTIONS]
        ax.bar([g + (k - (len(results) - 1) / 2) * width for g in range(len(groups))], values, width, label=r.model)
    ax.axhline(50, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(groups)), [COLUMNS.get(g, g) for g in groups])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("RewardBench")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(results) + 1, 4), frameon=False)
    return save_figure(fig, out)


def write_report(results: Sequence[RewardBenchResult], out_dir: str | Path, data: str) -> dict[str, Path]:
    """Write rewardbench.json, rewardbench.md (both tables) and rewardbench.png under `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "rewardbench.json", "md": out_dir / "rewardbench.md", "png": out_dir / "rewardbench.png"}
    record = {"data": data, "models": [result_json(r) for r in results]}
    write_json(paths["json"], record)
    write_text(paths["md"], f"# RewardBench\n\nData: `{data}`\n\n{markdown_table(results)}\n## Subsets\n\n{subset_table(results)}")
    plot_sections(results, paths["png"])
    return paths
