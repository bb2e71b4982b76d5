"""Annotator aggregation of HelpSteer2 (ratings) and HelpSteer2-Preference (strengths), spec §1.1-§1.2.

Both datasets keep "the 3 annotations that agree most" and round their mean. The selection rule is not
published; the one here (smallest max-min, then smallest variance, then first occurrence) is our choice and
is what `rlhf.data.synthetic` uses too. Rounding is half away from zero, done in exact fractions.
Validation of the inputs (types, ranges) is left to the callers in `rlhf.data.helpsteer2`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction

NEITHER_VALID = -100
"""The preference annotation "neither response is valid"; it carries no strength and is dropped."""


def round_half_away(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3), exactly."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def three_most_similar(values: Sequence[int]) -> tuple[int, ...]:
    """The 3 values that agree most, in their original order.

    Among all 3-subsets, pick the one with the smallest spread (max - min); break ties by the smallest
    variance, then by first occurrence (the lexicographically first index triple, i.e. the subset whose
    members appear earliest). With fewer than 3 values, all of them are returned.

    Example: (0, 2, 4, 1) -> (0, 2, 1): spreads are 4, 2, 4, 3 for the triples (0,2,4), (0,2,1), (0,4,1), (2,4,1).
    """
    if len(values) <= 3:
        return tuple(values)
    best: tuple[int, int, int] | None = None
    best_key: tuple[int, int] | None = None
    for triple in itertools.combinations(range(len(values)), 3):
        subset = [values[i] for i in triple]
        total = sum(subset)
        # 3 * sum(x^2) - sum(x)^2 = 9 * population variance: an exact integer proxy
        key = (max(subset) - min(subset), 3 * sum(x * x for x in subset) - total * total)
        if best_key is None or key < best_key:  # strict: the first triple wins a tie
            best, best_key = triple, key
    assert best is not None
    return tuple(values[i] for i in best)


def aggregate_strengths(strengths: Sequence[int], max_spread: int = 2) -> int | None:
    """Aggregate preference strengths (-3..3, or -100 for "neither valid") into one strength.

    Drops -100 annotations, keeps the 3 most similar, and returns round(mean) with halves rounded away from
    zero (a mean of 3 integers never ends in .5; with 1-2 valid annotations it can, e.g. (1, 2) -> 2,
    (-1, -2) -> -2). Returns None when no valid annotation is left or the kept spread exceeds `max_spread`.
    A 0 result is returned as 0: dropping and counting it is the caller's job.
    """
    valid = [s for s in strengths if s != NEITHER_VALID]
    if not valid:
        return None
    kept = three_most_similar(valid)
    if max(kept) - min(kept) > max_spread:
        return None
    return round_half_away(Fraction(sum(kept), len(kept)))


def aggregate_ratings(ratings: Sequence[int]) -> int:
    """Aggregate one attribute's ratings (0..4): round(mean of the 3 most similar), halves away from zero.

    Raises:
        ValueError: `ratings` is empty.
    """
    if not ratings:
        raise ValueError("aggregate_ratings needs at least one rating")
    kept = three_most_similar(ratings)
    return round_half_away(Fraction(sum(kept), len(kept)))
