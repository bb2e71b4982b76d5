"""Hand cases for `rlhf.data.aggregation`: three-most-similar selection, spread exclusion, -100, rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest

from rlhf.data.aggregation import aggregate_ratings, aggregate_strengths, round_half_away, three_most_similar


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((0, 2, 4, 1), (0, 2, 1)),  # spreads 4, 2, 4, 3
        ((3, 3, 0, 3), (3, 3, 3)),  # an outlier is left out
        ((1, 2, 3, 2), (1, 2, 2)),  # spread 1 for (1,2,2) and (2,3,2), equal variance: first occurrence
        ((0, 1, 2, 1, 2), (0, 1, 1)),  # several spread-1 triples, equal variance: the earliest index triple
        ((2, 4, 2, 0), (2, 4, 2)),  # (2,4,2) and (2,2,0): spread 2, equal variance; original order is kept
        ((-3, 3, 0, 0, 1), (0, 0, 1)),
        ((4, 2), (4, 2)),  # fewer than 3: all of them
        ((), ()),
    ],
)
def test_three_most_similar(values: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert three_most_similar(values) == expected


def test_spread_ties_are_broken_by_variance() -> None:
    # (-3,-3,-1) and (1,2,3) both have spread 2 and no triple has less; 9*variance is 8 vs 6, so (1,2,3) wins
    # although it comes later.
    assert three_most_similar((-3, -3, -1, 1, 2, 3)) == (1, 2, 3)
    assert aggregate_strengths((-3, -3, -1, 1, 2, 3)) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [(Fraction(5, 2), 3), (Fraction(-5, 2), -3), (Fraction(1, 2), 1), (Fraction(-1, 2), -1), (Fraction(1, 3), 0),
     (Fraction(-2, 3), -1), (Fraction(-4, 3), -1), (Fraction(0), 0), (Fraction(7, 3), 2)],
)
def test_round_half_away(value: Fraction, expected: int) -> None:
    assert round_half_away(value) == expected


@pytest.mark.parametrize(
    ("strengths", "expected"),
    [
        ((2, 3, 3), 3),  # mean 8/3
        ((-2, -3, -3), -3),
        ((-1, -1, -2), -1),  # -4/3
        ((-2, -2, -1), -2),  # -5/3
        ((1, -1, 1), 0),  # 1/3 -> 0 is returned, not None
        ((1, -1, -1), 0),
        ((-3, 1, 3), None),  # spread 6
        ((-2, 1, 1), None),  # spread 3 > 2
        ((-1, 1, 1, -3, 3), 0),  # three most similar (-1,1,1) mean 1/3
        ((-3, 2, 2, 3), 2),  # outlier -3 left out: (2,2,3) mean 7/3
        ((-100, 2, 3, -100), 3),  # -100 dropped; mean of 2 values 5/2 rounds away from zero
        ((-100, -2, -3), -3),  # -5/2 -> -3
        ((-100, -100, -100), None),
        ((), None),
        ((-1,), -1),
        ((3, 1, 1), 2),  # spread exactly 2 is kept: 5/3
    ],
)
def test_aggregate_strengths(strengths: tuple[int, ...], expected: int | None) -> None:
    assert aggregate_strengths(strengths) == expected


def test_aggregate_strengths_max_spread() -> None:
    assert aggregate_strengths((-2, 1, 1), max_spread=3) == 0
    assert aggregate_strengths((1, 2, 3), max_spread=1) is None


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [((3, 4, 4), 4), ((0, 0, 1), 0), ((2, 3), 3), ((1, 2), 2), ((4,), 4), ((0, 4, 3, 3), 3), ((1, 2, 2, 4, 0), 2)],
)
def test_aggregate_ratings(ratings: tuple[int, ...], expected: int) -> None:
    assert aggregate_ratings(ratings) == expected


def test_aggregate_ratings_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        aggregate_ratings(())
