"""Simulated annotators of the synthetic worlds (`rlhf.data.synthetic`, `rlhf.study.world`).

A rater labels a latent attribute value as round(value + own bias + noise) clipped to 0..4; a judge turns a perceived
quality gap into a −3..3 strength (never 0) with noise, a small recency bias and 5% careless answers, writes a
one-line justification, and sometimes (both responses poor) says "neither valid". `shifts` move what each judge of a
panel perceives, which is how the study's disagreeing groups are made. Left out: annotator identities across items.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Protocol

from rlhf.data.aggregation import NEITHER_VALID
from rlhf.types import HS2_ATTRIBUTES

DEGREES = ("slightly better", "better", "much better")
REASONS = {  # feature -> justification, checked in this order
    "on_topic": "It talks about what was asked.",
    "fluent": "It makes more sense.",
    "complete": "It does not stop in the middle.",
    "no_repeat": "It does not repeat itself.",
    "correct": "Its facts are right.",
    "detail": "It tells more.",
}


class Judged(Protocol):
    """What a judge sees of a response: its latent quality and visible features."""

    quality: float
    features: dict[str, float]


def annotator_count(rng: random.Random) -> int:
    """3-5 annotators, as in HelpSteer2 (mostly 3)."""
    return rng.choice((3, 3, 3, 4, 5))


def rate(latent: float, rng: random.Random) -> int:
    """One 0..4 label of a latent value (the rater's bias already added)."""
    return min(4, max(0, math.floor(latent + rng.gauss(0, 0.45) + 0.5)))


def annotate_ratings(latents: dict[str, float], rng: random.Random) -> dict[str, tuple[int, ...]]:
    """Every attribute rated by one panel of 3-5 raters, each with a fixed bias."""
    biases = [rng.gauss(0, 0.25) for _ in range(annotator_count(rng))]
    return {name: tuple(rate(latents[name] + b, rng) for b in biases) for name in HS2_ATTRIBUTES}


def strength(delta: float, rng: random.Random) -> int:
    """One annotator's -3..3 (never 0) judgement of q2 - q1; 5% are careless and pick at random."""
    if rng.random() < 0.05:
        return rng.choice((-3, -2, -1, 1, 2, 3))
    d = delta + 0.1 + rng.gauss(0, 0.55)  # +0.1: the recency bias towards response 2
    size = 1 if abs(d) < 0.9 else 2 if abs(d) < 2.0 else 3
    return size if d >= 0 else -size


def justification(s: int, r1: Judged, r2: Judged) -> str:
    """The annotator's note for strength `s`: the first feature where the winner is better."""
    if s == NEITHER_VALID:
        return "Neither response is valid."
    winner, loser = (r1, r2) if s < 0 else (r2, r1)
    reason = next((text for k, text in REASONS.items() if winner.features[k] > loser.features[k]), "It reads better.")
    return f"Response {1 if s < 0 else 2} is {DEGREES[abs(s) - 1]}. {reason}"


def panel_strengths(r1: Judged, r2: Judged, shifts: Sequence[float], rng: random.Random) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Strengths and notes of one judge per shift; a judge perceives q2 − q1 + its shift (−100 sometimes when both are poor)."""
    strengths = []
    for shift in shifts:
        neither = max(r1.quality, r2.quality) < 1.2 and rng.random() < 0.4
        strengths.append(NEITHER_VALID if neither else strength(r2.quality - r1.quality + shift, rng))
    return tuple(strengths), tuple(justification(s, r1, r2) for s in strengths)
