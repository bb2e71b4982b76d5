"""`rlhf.data.synthetic`: determinism, schema (the real loaders parse it), drops, and that labels follow quality."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from rlhf.data.aggregation import aggregate_strengths
from rlhf.data.helpsteer2 import load_preference_pairs, load_rating_examples
from rlhf.data.rows import read_rows
from rlhf.data.synthetic import FACTS, generate, main, make_world
from rlhf.data.templates import TemplateSpec, render
from rlhf.types import PreferencePair

# Characters the 105-piece TinyStories tokenizer (data/tiny-llama) knows and that the generator may use.
ALLOWED = set(string.ascii_letters + string.digits + " .,!?'-")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("synthetic"), seed=0)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=3, n_train_prompts=60, n_val_prompts=10)
    b = generate(tmp_path / "b", seed=3, n_train_prompts=60, n_val_prompts=10)
    c = generate(tmp_path / "c", seed=4, n_train_prompts=60, n_val_prompts=10)
    assert sorted(a) == ["README", "preference_train", "preference_val", "ratings_train", "ratings_val"]
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)
    assert a["preference_train"].read_bytes() != c["preference_train"].read_bytes()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path), "--seed", "1", "--n-prompts", "20", "--n-val-prompts", "5"])
    assert len(read_rows(tmp_path / "ratings_train.jsonl")) == 40
    assert len(read_rows(tmp_path / "preference_val.jsonl")) == 5
    assert "ratings_train.jsonl" in capsys.readouterr().out


def test_loaders_parse_everything(files: dict[str, Path]) -> None:
    for split, n_prompts in (("train", 1200), ("val", 300)):
        examples, stats = load_rating_examples(files[f"ratings_{split}"], helpfulness_only=False)
        assert stats.kept == stats.rows == 2 * n_prompts and stats.skipped_bad == 0
        pairs, stats = load_preference_pairs(files[f"preference_{split}"])
        assert stats.rows == n_prompts and stats.skipped_bad == 0
        assert stats.dropped_zero_strength > 0 and stats.dropped_spread > 0
        assert stats.kept > 0.6 * n_prompts
        assert {p.magnitude for p in pairs} == {1, 2, 3}
        assert {label for e in examples for label in e.labels} == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_text_fits_the_tiny_model(files: dict[str, Path]) -> None:
    rows = read_rows(files["ratings_train"]) + read_rows(files["ratings_val"])
    assert set("".join(r.data["prompt"] + r.data["response"] for r in rows)) <= ALLOWED
    assert max(len(r.data["prompt"]) for r in rows) <= 50
    assert max(len(r.data["response"]) for r in rows) <= 120
    spec = TemplateSpec(system="")
    assert max(len(render(spec, r.data["prompt"], r.data["response"])) for r in rows) <= 250


def test_preferences_follow_latent_quality() -> None:
    agree = total = 0
    for item in make_world(seed=0)["train"]:
        strength = aggregate_strengths(item.strengths)
        delta = item.responses[1].quality - item.responses[0].quality
        if strength and delta:  # kept pairs whose latent qualities differ
            total += 1
            agree += (strength > 0) == (delta > 0)
    assert total > 700 and agree / total > 0.85


ALL_FACTS = {fact for facts in FACTS.values() for fact in facts}


def _text_score(prompt: str, response: str) -> float:
    """A hand-feature baseline that reads only the text: on topic, right facts, well-formed, varied, complete."""
    subject = next(s for s in FACTS if f" {s}" in prompt.rstrip(".?"))
    sentences = [s.strip() for s in response.rstrip(".").split(".")]
    on_topic = subject in response.lower().replace(".", "").split()
    right = sum(any(s.lower().endswith(f) for f in FACTS[subject]) for s in sentences) / len(sentences)
    formed = sum(s.startswith(("The ", "It ")) and s.split(" ", 1 + s.startswith("The "))[-1] in ALL_FACTS
                 for s in sentences) / len(sentences)
    complete = response.endswith(".")
    varied = len(set(sentences)) == len(sentences)
    details = len(set(sentences)) - (not complete)
    return 0.3 * on_topic + 0.25 * on_topic * right + 0.15 * formed + 0.1 * (varied + complete + (details - 1) / 2)


def test_preferences_are_visible_in_the_text(files: dict[str, Path]) -> None:
    pairs, _ = load_preference_pairs(files["preference_train"])
    scored = [(_text_score(p.prompt, p.chosen), _text_score(p.prompt, p.rejected)) for p in pairs]
    decided = [(c, r) for c, r in scored if c != r]
    assert len(decided) > 0.9 * len(pairs)
    assert sum(c > r for c, r in decided) / len(decided) > 0.85
    assert isinstance(pairs[0], PreferencePair)
