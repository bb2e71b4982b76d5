"""The reproduction study's annotation world: the synthetic HelpSteer2 world plus systematically disagreeing groups.

Every response has a latent consensus quality q (`rlhf.data.synthetic`: on topic, right facts, fluent, no
repetition, complete, detail). A `contested_share` of the prompts are underspecified ("Describe the cat.": how much
should one say?): their two responses differ in detail by at least `min_detail_gap`, and their annotators come from
two groups with opposite tastes for detail, alternating within the panel so both groups are always present. A
"more" annotator perceives q + taste·(detail − ½) and a "less" annotator q − taste·(detail − ½), in ratings and in
pairwise strengths alike; the groups cancel in expectation, so the truth stays q. All other prompts use the plain
synthetic annotators. Labels are aggregated with the repo's own `rlhf.data.aggregation`.

Files (train/val/test): HelpSteer2 `ratings_*.jsonl` and HelpSteer2-Preference `preference_*.jsonl` with every
annotator's strength, plus `truth_*.jsonl` (q of each response and the contested flag), which no training reads.
Left out: other disagreement causes of the paper's taxonomy (refusals, errors), annotator identities across items.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from rlhf.data.annotators import annotator_count, panel_strengths, rate
from rlhf.data.synthetic import FACTS, PROMPTS, Item, Response, make_item, make_response, preference_rows, rating_rows, write_jsonl
from rlhf.files import write_json
from rlhf.types import HS2_ATTRIBUTES

CONTESTED_PROMPTS = ("Describe the {s}.", "Say something about the {s}.", "Talk about a {s}.")
"""Underspecified prompt family: nothing says how much detail is wanted. Disjoint from `synthetic.PROMPTS`."""
assert not set(CONTESTED_PROMPTS) & set(PROMPTS)


@dataclass(frozen=True)
class WorldSpec:
    """The world's parameters, fixed before any variant was trained.

    Args:
        seed: seeds the three split streams.
        n_train, n_val, n_test: prompts per split (two responses each).
        contested_share: probability that a prompt is contested (two annotator groups).
        taste: how far a group's taste moves its perceived quality, per unit of (detail − ½), in q units (q ∈ [0, 4]).
        min_detail_gap: contested pairs are redrawn until their responses' detail differs by at least this much.
    """

    seed: int = 0
    n_train: int = 1000
    n_val: int = 250
    n_test: int = 1000
    contested_share: float = 0.3
    taste: float = 2.0
    min_detail_gap: float = 0.5


@dataclass(frozen=True)
class StudyItem:
    """A generated item and its hidden truth."""

    item: Item
    contested: bool

    def truth(self) -> dict[str, object]:
        r1, r2 = self.item.responses
        return {"prompt": self.item.prompt, "response_1": r1.text, "response_2": r2.text, "q_1": r1.quality, "q_2": r2.quality, "contested": self.contested}


def _contested_ratings(response: Response, tastes: list[float], rng: random.Random) -> dict[str, tuple[int, ...]]:
    """Ratings by a two-group panel: helpfulness moves with each annotator's taste; the other attributes are kept."""
    bias = [rng.gauss(0, 0.25) for _ in tastes]
    shift = response.features["detail"] - 0.5
    helpful = tuple(rate(response.quality + b + t * shift, rng) for b, t in zip(bias, tastes))
    return {name: helpful if name == "helpfulness" else response.ratings[name] for name in HS2_ATTRIBUTES}


def _tastes(n: int, taste: float, rng: random.Random) -> list[float]:
    first = rng.choice((1.0, -1.0))
    return [first * taste * (1 if i % 2 == 0 else -1) for i in range(n)]


def make_contested_item(spec: WorldSpec, rng: random.Random) -> Item:
    """An underspecified prompt, two responses differing in detail, and a two-group panel's strengths."""
    subject = rng.choice(sorted(FACTS))
    prompt = rng.choice(CONTESTED_PROMPTS).format(s=subject)
    for _ in range(50):
        r1, r2 = make_response(subject, rng), make_response(subject, rng)
        if abs(r1.features["detail"] - r2.features["detail"]) >= spec.min_detail_gap:
            break
    tastes = _tastes(annotator_count(rng), spec.taste, rng)
    r1 = Response(r1.text, r1.features, r1.quality, _contested_ratings(r1, tastes, rng))
    r2 = Response(r2.text, r2.features, r2.quality, _contested_ratings(r2, tastes, rng))
    gap = r2.features["detail"] - r1.features["detail"]
    strengths, notes = panel_strengths(r1, r2, [t * gap for t in _tastes(annotator_count(rng), spec.taste, rng)], rng)
    return Item(prompt, (r1, r2), strengths, notes)


def make_study_world(spec: WorldSpec = WorldSpec()) -> dict[str, list[StudyItem]]:
    """StudyItems per split ("train", "val", "test"), each split from its own seeded stream."""
    sizes = {"train": spec.n_train, "val": spec.n_val, "test": spec.n_test}
    world = {}
    for split, n in sizes.items():
        rng = random.Random(f"rlhf-study:{spec.seed}:{split}")
        items = []
        for _ in range(n):
            contested = rng.random() < spec.contested_share
            items.append(StudyItem(make_contested_item(spec, rng) if contested else make_item(rng), contested))
        world[split] = items
    return world


def write_study_world(out_dir: str | Path, spec: WorldSpec = WorldSpec()) -> dict[str, Path]:
    """Write ratings/preference/truth JSONL per split and world.json (the spec); returns {file stem: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, study_items in make_study_world(spec).items():
        items = [s.item for s in study_items]
        paths[f"ratings_{split}"] = write_jsonl(out / f"ratings_{split}.jsonl", rating_rows(items))
        paths[f"preference_{split}"] = write_jsonl(out / f"preference_{split}.jsonl", preference_rows(items, split))
        paths[f"truth_{split}"] = write_jsonl(out / f"truth_{split}.jsonl", [s.truth() for s in study_items])
    paths["world"] = out / "world.json"
    write_json(paths["world"], asdict(spec))
    return paths

