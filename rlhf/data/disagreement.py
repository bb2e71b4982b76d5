"""Annotator disagreement of HelpSteer2-Preference rows (spec §7.1): 5-class distributions and divergence labels.

Raw strengths are −3..3 (−100 "neither valid" is dropped); negative = response_1 (A) better, as in
`rlhf.data.helpsteer2`. Classes follow `rlhf.losses.MEAN_VAR_CLASSES` (ascending in r_A − r_B): |s| ≥ 2 is a
significant preference, |s| = 1 slight, 0 a tie, so −3/−2 → 4 "A significant", −1 → 3, 0 → 2, 1 → 1, 2/3 → 0.
`divergence_label` implements the third-party rule quoted in spec §7.1 (the paper's own rule is unpublished).
Pure Python over lists of ints; no tensors, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rlhf.data.aggregation import NEITHER_VALID

N_CLASSES = 5
DivergenceLabel = Literal["diverging", "high_agreement"]


def valid_strengths(strengths: Sequence[int]) -> list[int]:
    """Drop −100 ("neither valid"); raise on anything outside −3..3."""
    kept = [s for s in strengths if s != NEITHER_VALID]
    for s in kept:
        if isinstance(s, bool) or not isinstance(s, int) or not -3 <= s <= 3:
            raise ValueError(f"strength {s!r} is not an int in -3..3 (or -100)")
    return kept


def strength_class(strength: int) -> int:
    """Class index of one strength: −3/−2 → 4, −1 → 3, 0 → 2, 1 → 1, 2/3 → 0 (A = response_1 is index 4's side)."""
    level = min(abs(strength), 2)
    return 2 + level if strength < 0 else 2 - level


def class_distribution(strengths: Sequence[int]) -> list[float] | None:
    """Empirical 5-class distribution of the valid annotators (None if none is valid); sums to 1."""
    kept = valid_strengths(strengths)
    if not kept:
        return None
    counts = [0] * N_CLASSES
    for s in kept:
        counts[strength_class(s)] += 1
    return [c / len(kept) for c in counts]


@dataclass(frozen=True)
class DivergenceRule:
    """Configuration of `divergence_label`.

    Attributes:
        exclude_all_slight: a both-sides pair is not "diverging" when every non-tie vote is slight (|s| = 1).
        ties_break_agreement: any tie vote prevents "high_agreement" (the third-party rule); False allows ties.
        min_annotators: fewer valid annotators than this → no label.
    """

    exclude_all_slight: bool = True
    ties_break_agreement: bool = True
    min_annotators: int = 2


def divergence_label(strengths: Sequence[int], rule: DivergenceRule = DivergenceRule()) -> DivergenceLabel | None:
    """"diverging", "high_agreement" or None (neither: left out of the AUROC).

    With n_A / n_B the votes for response_1 / response_2 (s < 0 / s > 0):
    - diverging: n_A > 0 and n_B > 0, unless `exclude_all_slight` and every non-tie vote has |s| = 1;
    - high_agreement: at least one non-tie vote, all on one side, and no tie vote (if `ties_break_agreement`);
    - None otherwise (all ties, mixed slight-only, some ties with one side, too few annotators).
    """
    kept = valid_strengths(strengths)
    if len(kept) < rule.min_annotators:
        return None
    votes = [s for s in kept if s != 0]
    n_a, n_b = sum(s < 0 for s in votes), sum(s > 0 for s in votes)
    if n_a > 0 and n_b > 0:
        if rule.exclude_all_slight and all(abs(s) == 1 for s in votes):
            return None
        return "diverging"
    if votes and not (rule.ties_break_agreement and len(votes) < len(kept)):
        return "high_agreement"
    return None
