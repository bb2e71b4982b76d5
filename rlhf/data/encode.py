"""Tokenise (prompt, response) examples under an explicit over-length policy, and count what it touched.

Policies, for text longer than `max_length` tokens after templating:
- "drop": drop the whole example (a pair is dropped as a pair, never split). Training only.
- "truncate_prompt": cut the prompt from the left (the same cut for both responses of a pair) until everything
  fits; drop the example if even an empty prompt does not fit. Training only.
- "truncate": evaluation's rule, which never drops: cut the prompt from the left; if the response alone is still
  too long, keep its beginning and cut it from the right, without the template's closing tokens (or DPO's EOS):
  a cut response must not read as a finished one.
Prompt cuts take whole turns (`turn_safe_cut`: never inside a turn marker; only the last user turn is cut by
characters); re-tokenising keeps the template intact for any tokenizer; the search is a bisection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

from rlhf.data.templates import TemplateSpec, render, render_prompt, turn_safe_cut

OverlengthPolicy = Literal["drop", "truncate_prompt", "truncate"]


@dataclass
class EncodeStats:
    """How many examples an over-length policy kept unchanged, truncated or dropped."""

    total: int = 0
    truncated: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self, name: str) -> str:
        return f"{name}: {self.total} examples, {self.truncated} truncated, {self.dropped} dropped (over length)"


def _smallest_fitting(fits: Callable[[int], bool], hi: int) -> int | None:
    """Smallest k in [0, hi] with fits(k), assuming fits is monotone in k; None if fits(hi) is False."""
    if not fits(hi):
        return None
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class Encoder:
    """Renders and tokenises examples with one tokenizer, template and length limit.

    Args:
        tokenizer: a Hugging Face tokenizer (called as tokenizer(text)["input_ids"]).
        template: how (prompt, response) becomes text.
        max_length: the token limit per sequence.
    """

    def __init__(self, tokenizer, template: TemplateSpec, max_length: int):
        self.tokenizer, self.template, self.max_length = tokenizer, template, max_length
        # a chat template already writes the BOS token itself
        self.add_special_tokens = template.name != "chat"

    def ids(self, prompt: str, response: str) -> list[int]:
        text = render(self.template, prompt, response, self.tokenizer)
        return list(self.tokenizer(text, add_special_tokens=self.add_special_tokens, verbose=False)["input_ids"])

    def open_ids(self, prompt: str, response: str) -> list[int]:
        """Ids of the rendered prompt and `response` with nothing after it (no closing tokens, no EOS)."""
        text = render_prompt(self.template, prompt, self.tokenizer) + response
        return list(self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def _fits(self, prompt: str, responses: Sequence[str]) -> bool:
        return all(len(self.ids(prompt, r)) <= self.max_length for r in responses)

    def encode(self, prompt: str, responses: Sequence[str], policy: OverlengthPolicy, stats: EncodeStats) -> list[list[int]] | None:
        """Token ids for each response after the shared prompt, or None when the policy drops the example."""
        stats.total += 1
        ids = [self.ids(prompt, r) for r in responses]
        if all(len(x) <= self.max_length for x in ids):
            return ids
        if policy == "drop":
            stats.dropped += 1
            return None
        cut = _smallest_fitting(lambda k: self._fits(prompt[turn_safe_cut(prompt, k):], responses), len(prompt))
        if cut is not None:
            stats.truncated += 1
            return [self.ids(prompt[turn_safe_cut(prompt, cut):], r) for r in responses]
        if policy == "truncate_prompt":
            stats.dropped += 1
            return None
        stats.truncated += 1
        return [self._cut_response(r) for r in responses]

    def _cut_response(self, response: str) -> list[int]:
        """Empty prompt; a response that does not fit is cut from the right (keeping its start) and left open."""
        whole = self.ids("", response)
        if len(whole) <= self.max_length:
            return whole
        keep = _smallest_fitting(lambda k: len(self.open_ids("", response[: len(response) - k])) <= self.max_length, len(response))
        if keep is None:
            raise ValueError(f"max_length {self.max_length} is shorter than the template alone")
        return self.open_ids("", response[: len(response) - keep])
