"""Hand cases for `rlhf.data.disagreement`: strength classes, empirical distributions, divergence labels."""

from __future__ import annotations

import pytest

from rlhf.data.disagreement import DivergenceRule, class_distribution, divergence_label, strength_class


@pytest.mark.parametrize(("strength", "cls"), [(-3, 4), (-2, 4), (-1, 3), (0, 2), (1, 1), (2, 0), (3, 0)])
def test_strength_class(strength, cls):
    assert strength_class(strength) == cls


def test_class_distribution_hand_cases():
    assert class_distribution([-3, -2, -1, 0, 1, 2, 3, -100]) == pytest.approx([2 / 7, 1 / 7, 1 / 7, 1 / 7, 2 / 7])
    assert class_distribution([-1, -1, 0, -100]) == pytest.approx([0, 0, 1 / 3, 2 / 3, 0])
    assert class_distribution([2]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert class_distribution([-100, -100]) is None
    assert class_distribution([]) is None


@pytest.mark.parametrize("bad", [[4], [-4], [1, 2.0], [True]])
def test_invalid_strengths_raise(bad):
    with pytest.raises(ValueError):
        class_distribution(bad)


@pytest.mark.parametrize(
    ("strengths", "label"),
    [
        ([-2, -1, -3], "high_agreement"),
        ([3, 2, -100, 2], "high_agreement"),
        ([-1, -1], "high_agreement"),  # slight-only but one-sided still agrees
        ([-2, 1, -1], "diverging"),
        ([-1, 3], "diverging"),
        ([-2, 0, 2, 0], "diverging"),  # ties do not stop divergence
        ([-1, 1, 0], None),  # every non-tie vote slight: excluded
        ([-2, 0, -1], None),  # a tie breaks high agreement
        ([0, 0, 0], None),  # all ties: neither
        ([-3], None),  # a single annotator
        ([-3, -100], None),
    ],
)
def test_divergence_label_default_rule(strengths, label):
    assert divergence_label(strengths) == label


def test_divergence_label_configurable():
    assert divergence_label([-1, 1, 0], DivergenceRule(exclude_all_slight=False)) == "diverging"
    assert divergence_label([-2, 0, -1], DivergenceRule(ties_break_agreement=False)) == "high_agreement"
    assert divergence_label([0, 0], DivergenceRule(ties_break_agreement=False)) is None  # no vote at all
    assert divergence_label([-3], DivergenceRule(min_annotators=1)) == "high_agreement"
