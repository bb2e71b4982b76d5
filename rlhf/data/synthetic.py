"""A tiny synthetic HelpSteer2 world for offline demos: `python -m rlhf.data.synthetic --out DIR [--seed 0]`.

Each prompt asks about a subject ("Tell me about the cat."); its two responses are TinyStories-style fact
sentences whose latent quality q in [0, 4] is a weighted mix of visible features (on topic, right facts,
fluent vs shuffled words, no repetition, not cut off, more facts). 3-5 noisy simulated annotators (`annotators`) rate and
compare them, and the stored labels are aggregated with the real `rlhf.data.aggregation`. Text uses only
characters a char-level TinyStories tokenizer knows, and prompt (<= 50) + response (<= 120) fit a 256-token
context with the SteerLM template. Left out: multi-turn prompts, justification post-processing, safety data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from rlhf.data.aggregation import aggregate_ratings, aggregate_strengths
from rlhf.data.annotators import annotate_ratings, annotator_count, panel_strengths
from rlhf.errors import ArgumentParser, run_main
from rlhf.files import json_line, write_text
from rlhf.types import HS2_ATTRIBUTES

FACTS: dict[str, tuple[str, ...]] = {
    "cat": ("says meow", "likes to drink milk", "has soft fur", "can climb a tree"),
    "dog": ("says woof", "likes to dig holes", "wags its tail", "fetches the stick"),
    "bird": ("sings in the morning", "builds a nest", "has light feathers", "flies over the hills"),
    "fish": ("swims in the water", "has shiny scales", "blows little bubbles", "lives in the sea"),
    "frog": ("says ribbit", "jumps very far", "sits on a lily pad", "eats little bugs"),
    "duck": ("says quack", "has webbed feet", "paddles on the pond", "waddles when it walks"),
    "bee": ("makes honey", "says buzz", "visits the flowers", "lives in a hive"),
    "sun": ("is hot and bright", "comes up in the morning", "makes the day warm", "sets in the evening"),
    "moon": ("shines at night", "is round and white", "is very far away", "changes its shape"),
    "tree": ("is tall and green", "has many leaves", "grows from a seed", "gives cool shade"),
    "ball": ("is round", "can bounce up high", "rolls on the grass", "is fun to kick"),
    "cake": ("is sweet", "has candles on top", "is made with eggs", "is baked in an oven"),
    "car": ("has four wheels", "drives on the road", "says beep beep", "needs gas to go"),
    "boat": ("floats on the water", "has a big sail", "sails on the sea", "has a long oar"),
    "rain": ("is wet", "falls from the clouds", "makes puddles", "helps plants grow"),
    "snow": ("is cold and white", "falls in winter", "is fun to play in", "melts in the sun"),
    "lion": ("says roar", "has a big mane", "is very strong", "hunts on the plains"),
    "cow": ("says moo", "gives us milk", "eats green grass", "lives on a farm"),
    "horse": ("says neigh", "eats hay", "runs very fast", "has a long tail"),
    "kite": ("flies in the wind", "has a long string", "goes up high", "has bright colors"),
    "flower": ("smells nice", "has pretty petals", "grows in the garden", "needs sun and water"),
    "bear": ("is big and furry", "loves to eat honey", "sleeps all winter", "lives in the woods"),
    "bunny": ("has long ears", "hops around", "likes carrots", "has a fluffy tail"),
    "train": ("says choo choo", "runs on tracks", "is very long", "stops at the station"),
}
PROMPTS = (
    "Tell me about the {s}.",
    "What do you know about the {s}?",
    "Can you tell me about a {s}?",
    "Please tell me about the {s}.",
    "What is a {s} like?",
)
WEIGHTS = {"on_topic": 0.25, "correct": 0.10, "fluent": 0.25, "no_repeat": 0.15, "complete": 0.15, "detail": 0.10}
"""q = 4 * sum(weight * feature); every feature is in [0, 1] and `correct` counts only when on topic."""


@dataclass(frozen=True)
class Response:
    """One response: its text, visible features (each in [0, 1]), latent quality and raw annotator ratings."""

    text: str
    features: dict[str, float]
    quality: float
    ratings: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Item:
    """One prompt with two responses and the raw preference strengths of its annotators."""

    prompt: str
    responses: tuple[Response, Response]
    strengths: tuple[int, ...]
    justifications: tuple[str, ...]


def _scramble(sentence: str, rng: random.Random) -> str:
    words = sentence.rstrip(".").lower().split()
    shuffled = words[:]
    for _ in range(5):  # word salad: any order but the original
        rng.shuffle(shuffled)
        if shuffled != words:
            break
    text = " ".join(shuffled)
    return text[0].upper() + text[1:] + "."


def _truncate(text: str, rng: random.Random) -> str:
    head, _, last = text.rpartition(". ")
    words = last.rstrip(".").split()
    cut = " ".join(words[: rng.randint(1, max(1, len(words) - 1))])
    return f"{head}. {cut}" if head else cut


def _quality(f: dict[str, float]) -> float:
    return 4 * sum(w * f[k] * (f["on_topic"] if k == "correct" else 1.0) for k, w in WEIGHTS.items())


def make_response(subject: str, rng: random.Random) -> Response:
    """A response to a question about `subject`; a per-response skill z correlates all its features."""
    z = rng.random()
    about = subject if rng.random() < 0.45 + 0.55 * z else rng.choice([s for s in FACTS if s != subject])
    n = 1 + sum(rng.random() < 0.3 + 0.5 * z for _ in range(2))
    repeated = n >= 2 and rng.random() < 0.35 * (1 - z)
    facts = rng.sample(FACTS[about], n)
    correct = [rng.random() < 0.25 + 0.75 * z for _ in facts]
    for i, ok in enumerate(correct):
        if not ok:
            facts[i] = rng.choice(FACTS[rng.choice([s for s in FACTS if s != about])])
    if repeated:
        facts, correct = [facts[0]] * n, [correct[0]] * n
    sentences = [f"The {about} {fact}." if i == 0 else f"It {fact}." for i, fact in enumerate(facts)]
    scrambled = [rng.random() < 0.45 * (1 - z) for _ in sentences]
    sentences = [_scramble(s, rng) if bad else s for s, bad in zip(sentences, scrambled)]
    text = " ".join(sentences)
    complete = rng.random() >= 0.35 * (1 - z)
    if not complete:
        text = _truncate(text, rng)
    distinct = len(set(facts)) - (0 if complete else 1)
    features = {
        "on_topic": float(about == subject),
        "correct": sum(correct) / n,
        "fluent": 1 - sum(scrambled) / n,
        "no_repeat": float(not repeated),
        "complete": float(complete),
        "detail": max(0, distinct - 1) / 2,
    }
    q = _quality(features)
    return Response(text, features, q, annotate_ratings(_latents(text, features, q), rng))


def _latents(text: str, f: dict[str, float], q: float) -> dict[str, float]:
    """Noise-free attribute values: helpfulness = q; the others follow their visible causes."""
    return {
        "helpfulness": q,
        "correctness": 4 * (f["on_topic"] * f["correct"] * (0.7 + 0.3 * f["fluent"]) + 0.15 * (1 - f["on_topic"])),
        "coherence": 4 * (0.6 * f["fluent"] + 0.2 * f["no_repeat"] + 0.2 * f["complete"]),
        "complexity": min(4.0, len(set(text.lower().split())) / 5),
        "verbosity": min(4.0, len(text) / 28),
    }


def make_item(rng: random.Random) -> Item:
    """A prompt, two responses and 3-5 preference annotations (-100 sometimes when both are poor)."""
    subject = rng.choice(sorted(FACTS))
    prompt = rng.choice(PROMPTS).format(s=subject)
    r1, r2 = make_response(subject, rng), make_response(subject, rng)
    strengths, notes = panel_strengths(r1, r2, [0.0] * annotator_count(rng), rng)
    return Item(prompt, (r1, r2), strengths, notes)


def make_world(seed: int = 0, n_train_prompts: int = 1200, n_val_prompts: int = 300) -> dict[str, list[Item]]:
    """Items per split ("train", "val"); each split has its own seeded stream, so sizes do not interact."""
    sizes = {"train": n_train_prompts, "val": n_val_prompts}
    streams = {split: random.Random(f"rlhf-synthetic:{seed}:{split}") for split in sizes}
    return {split: [make_item(streams[split]) for _ in range(n)] for split, n in sizes.items()}


def rating_rows(items: list[Item]) -> list[dict[str, object]]:
    """HelpSteer2 ratings rows: two consecutive rows per prompt, each attribute aggregated to one 0..4 int."""
    return [
        {"prompt": item.prompt, "response": r.text, **{k: aggregate_ratings(v) for k, v in r.ratings.items()}}
        for item in items
        for r in item.responses
    ]


def preference_rows(items: list[Item], split: str) -> list[dict[str, object]]:
    """HelpSteer2-Preference rows; a failed aggregation (spread > 2, nothing valid) is stored as null."""
    return [
        {
            "split": split,
            "prompt": item.prompt,
            "response_1": item.responses[0].text,
            "response_2": item.responses[1].text,
            "preference_strength": aggregate_strengths(item.strengths),
            "all_preferences_unprocessed": [
                {"strength": s, "justification": j} for s, j in zip(item.strengths, item.justifications)
            ],
        }
        for item in items
    ]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    write_text(path, "".join(json_line(row) for row in rows))
    return path


def _readme(seed: int, world: dict[str, list[Item]]) -> str:
    weights = " + ".join(f"{w:.2f} {k}" for k, w in WEIGHTS.items())
    outcomes = [aggregate_strengths(item.strengths) for items in world.values() for item in items]
    return f"""# Synthetic HelpSteer2 world (seed {seed})

Written by `python -m rlhf.data.synthetic`; the same seed gives byte-identical files.
{len(world["train"])} train and {len(world["val"])} val prompts, 2 responses each.

- `ratings_{{train,val}}.jsonl`: HelpSteer2 ratings schema (prompt, response, {", ".join(HS2_ATTRIBUTES)}; ints 0..4).
- `preference_{{train,val}}.jsonl`: HelpSteer2-Preference schema (split, prompt, response_1, response_2,
  preference_strength, all_preferences_unprocessed with each annotator's strength and justification).

Prompts ask about one of {len(FACTS)} subjects ("Tell me about the cat."). A response is 1-3 fact sentences.
Its latent quality is q = 4 * ({weights}),
each feature in [0, 1]: on topic (about the asked subject), correct (share of facts that belong to the
subject; counts only on topic), fluent (share of sentences not word-shuffled), no repetition, complete
(not cut off mid-sentence), detail ((distinct complete facts - 1) / 2).
One per-response skill draw makes the features correlate, so q is graded.

Ratings: 3-5 annotators, each label = round(latent + annotator bias + noise) clipped to 0..4, where
helpfulness = q, correctness follows on-topic right facts, coherence follows fluency/repetition/completeness,
complexity the number of distinct words and verbosity the length. Stored labels use `aggregate_ratings`.
Preferences: 3-5 annotators judge q2 - q1 with noise and a small recency bias (5% answer at random; -100
"neither valid" happens when both responses are poor), and `preference_strength` is `aggregate_strengths`.
Rows with aggregate 0 are kept in the files (the loader drops and counts them); rows whose aggregation
fails (spread > 2) store null, and the loader re-aggregates the raw strengths and counts them as spread.
In these files: {outcomes.count(0)} zero-strength and {outcomes.count(None)} failed-aggregation preference rows
out of {len(outcomes)}.
"""


def generate(
    out_dir: str | Path, seed: int = 0, n_train_prompts: int = 1200, n_val_prompts: int = 300
) -> dict[str, Path]:
    """Write the four JSON Lines files and README.md into `out_dir`; returns {file stem: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = make_world(seed, n_train_prompts, n_val_prompts)
    paths = {}
    for split, items in world.items():
        paths[f"ratings_{split}"] = write_jsonl(out / f"ratings_{split}.jsonl", rating_rows(items))
        paths[f"preference_{split}"] = write_jsonl(out / f"preference_{split}.jsonl", preference_rows(items, split))
    paths["README"] = out / "README.md"
    write_text(paths["README"], _readme(seed, world))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-prompts", type=int, default=1200, help="train prompts (2 responses each)")
    parser.add_argument("--n-val-prompts", type=int, default=300)
    args = parser.parse_args(argv)
    for path in generate(args.out, args.seed, args.n_prompts, args.n_val_prompts).values():
        print(path)


if __name__ == "__main__":
    run_main(main)
