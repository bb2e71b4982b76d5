"""Gold scorer: the world's latent quality q of any response text, read from the features the generator uses.

`rlhf.data.synthetic.make_response` builds q = 4·Σ weight·feature from on topic, right facts, fluent (not word-
shuffled), no repetition, complete (not cut off) and detail. `readings(prompt, text)` parses the text back into
those features: every full sentence is matched to the (subject, fact) it states, canonically ("The cat says meow.",
"It has soft fur.") or word-shuffled; a trailing fragment without a period is a cut-off sentence. Where the text
cannot tell the generator's hidden choices apart — which fact a cut-off fragment was, whether it was shuffled, a
repetition versus two wrong facts that happen to coincide — every consistent reading is returned, and `gold_quality`
scores their mean (`determined` is False then). Text that states no known fact (a policy's free text) gets
fluent = correct = 0 for that sentence and adds no detail; detail is clipped to 1 beyond three facts.
Left out: prompts outside the world's templates (on_topic is 0 for them).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

from rlhf.data.synthetic import FACTS, PROMPTS, WEIGHTS
from rlhf.study.world import CONTESTED_PROMPTS

_OWNER = {fact: subject for subject, facts in FACTS.items() for fact in facts}


@dataclass(frozen=True)
class Sentence:
    """One reading of one sentence: the subject it names (first sentence only), its fact, whether it is shuffled."""

    about: str | None
    fact: str | None
    scrambled: bool


@dataclass(frozen=True)
class Gold:
    """The gold quality of a response, whether the text determines it, and the distinct q of its readings."""

    quality: float
    determined: bool
    candidates: tuple[float, ...]


def prompt_subject(prompt: str) -> str | None:
    """The subject a world prompt asks about ("Tell me about the cat." → "cat"); None for any other prompt."""
    for template in PROMPTS + CONTESTED_PROMPTS:
        head, tail = template.split("{s}")
        if prompt.startswith(head) and prompt.endswith(tail) and prompt[len(head) : len(prompt) - len(tail)] in FACTS:
            return prompt[len(head) : len(prompt) - len(tail)]
    return None


def _forms(first: bool) -> list[tuple[str | None, str, list[str]]]:
    """(about, fact, canonical words) of every sentence the generator can write at this position."""
    if first:
        return [(about, fact, ["The", about, *fact.split()]) for about in FACTS for fact in _OWNER]
    return [(None, fact, ["It", *fact.split()]) for fact in _OWNER]


_FORMS = {first: _forms(first) for first in (True, False)}
_BY_BAG: dict[tuple[bool, tuple[str, ...]], list[tuple[str | None, str, list[str]]]] = {}
for _first, _list in _FORMS.items():
    for _form in _list:
        _BY_BAG.setdefault((_first, tuple(sorted(w.lower() for w in _form[2]))), []).append(_form)


def _scrambled_text(words: list[str]) -> list[str]:
    """The generator's casing of a shuffled sentence: lower case, first letter upper."""
    low = [w.lower() for w in words]
    return [low[0][:1].upper() + low[0][1:], *low[1:]] if low else low


def sentence_readings(words: list[str], first: bool, cut: bool) -> list[Sentence]:
    """Readings of one sentence's words (period removed); `cut`: a fragment (a strict prefix of the written words)."""
    out = []
    low = [w.lower() for w in words]
    forms = _FORMS[first] if cut else _BY_BAG.get((first, tuple(sorted(low))), [])
    for about, fact, canon in forms:
        if cut:
            if len(words) >= len(canon):
                continue
            if words == canon[: len(words)]:
                out.append(Sentence(about, fact, False))
            if not Counter(low) - Counter(w.lower() for w in canon) and words == _scrambled_text(words):
                out.append(Sentence(about, fact, True))  # a prefix of some shuffle of the words
        elif words == canon:
            out.append(Sentence(about, fact, False))
        elif words == _scrambled_text(words):  # same bag of words, another order
            out.append(Sentence(about, fact, True))
    return out or [Sentence(None, None, True)]


def _split(text: str) -> tuple[list[list[str]], list[str] | None]:
    """Full sentences' words and the cut-off fragment's words (None when the text ends with a period)."""
    text = re.sub(r"\s+", " ", text).strip()
    complete = text.endswith(".")
    parts = (text[:-1] if complete else text).split(". ") if text else []
    full = [p.split() for p in (parts if complete else parts[:-1])]
    return full, (None if complete else parts[-1].split() if parts else [])


def quality(features: dict[str, float]) -> float:
    """q = 4·Σ weight·feature, `correct` counting only on topic (as `synthetic._quality`)."""
    return 4 * sum(w * features[k] * (features["on_topic"] if k == "correct" else 1.0) for k, w in WEIGHTS.items())


def readings(prompt: str, text: str) -> list[dict[str, float]]:
    """The feature dicts of every reading of `text` consistent with the generator (deduplicated)."""
    subject = prompt_subject(prompt)
    full, fragment = _split(text)
    per_sentence = [sentence_readings(w, i == 0, False) for i, w in enumerate(full)]
    if fragment is not None:
        per_sentence.append(sentence_readings(fragment, not full, True) if fragment else [Sentence(None, None, True)])
    if not per_sentence:
        return [{"on_topic": 0.0, "correct": 0.0, "fluent": 0.0, "no_repeat": 1.0, "complete": 0.0, "detail": 0.0}]
    complete = fragment is None
    out = []
    for combo in itertools.product(*per_sentence):
        about, facts, n = combo[0].about, [s.fact for s in combo], len(combo)
        same = n >= 2 and facts[0] is not None and len(set(facts)) == 1
        # all facts identical: the generator's repetition, or (only for wrong facts) two wrong draws that coincide
        repeats = [True, False] if same and _OWNER[facts[0]] != about else [same]
        for repeated in repeats:
            known = {f for f in facts if f is not None}
            distinct = len(known) - (0 if complete else 1)
            out.append({
                "on_topic": float(about is not None and about == subject),
                "correct": sum(f is not None and _OWNER[f] == about for f in facts) / n,
                "fluent": 1 - sum(s.scrambled for s in combo) / n,
                "no_repeat": float(not repeated),
                "complete": float(complete),
                "detail": min(1.0, max(0, distinct - 1) / 2),
            })
    return [dict(t) for t in {tuple(sorted(f.items())) for f in out}]


def gold_quality(prompt: str, text: str) -> Gold:
    """The gold q of a response: the mean q of its readings; `determined` when they all agree."""
    qs = sorted({round(quality(f), 12) for f in readings(prompt, text)})
    return Gold(sum(qs) / len(qs), len(qs) == 1, tuple(qs))
