"""Preference-pair formats: HelpSteer2-Preference, TRL standard (explicit / implicit prompt), hh-rlhf, TRL conversational.

Each format is a small parser from one row to (prompt, chosen, rejected), then to the repo's `PreferencePair`:
- "helpsteer2": `{prompt, response_1, response_2, preference_strength}` (signed strength; `rlhf.data.helpsteer2`);
- "explicit": TRL standard, explicit prompt `{prompt, chosen, rejected}`, all strings;
- "implicit": TRL standard, implicit prompt `{chosen, rejected}` full texts; the prompt is their longest shared
  prefix (TRL's `extract_prompt` rule: a space just before the first difference goes to the replies);
- "hh_rlhf": `{chosen, rejected}` transcripts of `\\n\\nHuman:` / `\\n\\nAssistant:` turns; the shared turns are the
  prompt and the last assistant turn is the reply (`rlhf.data.messages`);
- "conversational": TRL conversational, `chosen` / `rejected` as `{role, content}` lists, with an optional separate
  `prompt` list (then each side is one assistant message).
`auto` decides from the first row and says why (`Detected.evidence`). Outside HelpSteer2 the strength is an optional
non-negative magnitude column (`preference_strength`, `margin`, or a named one; absent: 1); magnitude-0 pairs are
ties, dropped and counted. Left out: unpaired (KTO) and ranked-list formats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from rlhf.data.helpsteer2 import DropReason, LoadStats, OnBadRow, Source, parse_preference_rows, preference_row_outcome, source_rows
from rlhf.data.messages import (
    check_prompt,
    is_transcript,
    parse_transcript,
    prompt_text,
    require_messages,
    require_response,
    shared_turns,
)
from rlhf.data.rows import BadRowError, Row, field_error, has_field, require_text
from rlhf.types import PreferencePair

PreferenceFormat = Literal["auto", "helpsteer2", "explicit", "implicit", "hh_rlhf", "conversational"]
STRENGTH_FIELDS = ("preference_strength", "margin")
"""The magnitude columns looked for, in order, when no strength field is named."""


@dataclass(frozen=True)
class Detected:
    """The format a file is read as, and why (the evidence `auto` found, or that it was set)."""

    name: str
    evidence: str

    def describe(self) -> str:
        return f"format {self.name} ({self.evidence})"


def common_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the longest common prefix of two sequences (id lists or strings)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def detect_format(rows: Sequence[Row]) -> Detected:
    """The pair format of `rows`, judged from the first row.

    Raises:
        BadRowError: the first row fits no known format (the message lists its fields).
    """
    if not rows:
        return Detected("helpsteer2", "no rows to inspect")
    row, data = rows[0], rows[0].data
    chosen = data.get("chosen")
    where = row.source
    if "response_1" in data or "response_2" in data:
        return Detected("helpsteer2", f"{where} has 'response_1' and 'response_2'")
    if isinstance(chosen, list):
        prompt = "a separate 'prompt' list" if isinstance(data.get("prompt"), list) else "no separate prompt (shared turns)"
        return Detected("conversational", f"{where}: 'chosen' is a list of messages, {prompt}")
    if isinstance(chosen, str) and isinstance(data.get("prompt"), str):
        return Detected("explicit", f"{where} has string 'prompt', 'chosen' and 'rejected'")
    if is_transcript(chosen):
        return Detected("hh_rlhf", f"{where}: 'chosen' is a '\\n\\nHuman: ... \\n\\nAssistant: ...' transcript")
    if isinstance(chosen, str) and isinstance(data.get("rejected"), str):
        return Detected("implicit", f"{where} has string 'chosen' and 'rejected' and no 'prompt' (prompt = shared prefix)")
    raise BadRowError(
        f"{where}: cannot detect the preference format from fields {sorted(data)}; expected HelpSteer2 "
        "(prompt, response_1, response_2), TRL (prompt?, chosen, rejected) or hh-rlhf (chosen, rejected transcripts)"
    )


Texts = tuple[str, str, str]


def explicit_texts(row: Row) -> Texts:
    return require_text(row, "prompt"), require_response(row, "chosen"), require_response(row, "rejected")


def implicit_texts(row: Row) -> Texts:
    chosen, rejected = require_response(row, "chosen"), require_response(row, "rejected")
    if chosen == rejected:
        raise field_error(row, "rejected", "identical to 'chosen': no reply to compare")
    n = common_prefix(chosen, rejected)
    if 0 < n and chosen[n - 1] == " ":  # TRL: the space before the first differing token belongs to the replies
        n -= 1
    if n == 0:
        raise field_error(row, "rejected", "mismatched shared turns: shares no prompt prefix with 'chosen'")
    return check_prompt(row, "chosen", chosen[:n]), chosen[n:], rejected[n:]


def hh_rlhf_texts(row: Row) -> Texts:
    return shared_turns(row, parse_transcript(row, "chosen"), parse_transcript(row, "rejected"))


def _one_reply(row: Row, name: str) -> str:
    messages = require_messages(row, name)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise field_error(row, name, f"expected one assistant message after the separate 'prompt', got {len(messages)} "
                          f"message(s), the first a {messages[0]['role']!r} one")
    return messages[0]["content"]


def conversational_texts(row: Row) -> Texts:
    if has_field(row, "prompt"):
        prompt = prompt_text(row, "prompt", require_messages(row, "prompt"))
        return prompt, _one_reply(row, "chosen"), _one_reply(row, "rejected")
    return shared_turns(row, require_messages(row, "chosen"), require_messages(row, "rejected"))


PAIR_TEXTS: dict[str, Callable[[Row], Texts]] = {
    "explicit": explicit_texts, "implicit": implicit_texts, "hh_rlhf": hh_rlhf_texts, "conversational": conversational_texts,
}


def magnitude(row: Row, strength_field: str | None) -> float:
    """The pair's magnitude m ≥ 0 from `strength_field` (required if named) or the first of STRENGTH_FIELDS; else 1."""
    for name in (strength_field,) if strength_field else STRENGTH_FIELDS:
        if has_field(row, name):
            value = row.data[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise field_error(row, name, f"expected a magnitude >= 0 (chosen is already the preferred reply), got {value!r}")
            return value
    if strength_field:
        raise field_error(row, strength_field, "missing")
    return 1


def pair_outcome(texts: Callable[[Row], Texts], strength_field: str | None, row: Row) -> PreferencePair | DropReason:
    """One row of a non-HelpSteer2 format as a pair, or "zero_strength" for a tie (magnitude 0)."""
    prompt, chosen, rejected = texts(row)
    m = magnitude(row, strength_field)
    return "zero_strength" if m == 0 else PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, magnitude=m)


def row_outcome_fn(name: str, strength_field: str | None = None) -> Callable[[Row], PreferencePair | DropReason]:
    """The row parser of concrete format `name` ("auto" is resolved by `detect_format` first)."""
    if name == "helpsteer2":
        return preference_row_outcome
    return partial(pair_outcome, PAIR_TEXTS[name], strength_field)


def resolve(rows: Sequence[Row], format: PreferenceFormat) -> Detected:
    """`detect_format(rows)` for "auto", else the named format."""
    return detect_format(rows) if format == "auto" else Detected(format, "set by the format option")


def parse_pairs(
    rows: Sequence[Row], format: PreferenceFormat = "auto", strength_field: str | None = None, on_bad_row: OnBadRow = "error"
) -> tuple[list[PreferencePair], LoadStats, Detected]:
    """Parse rows of one format into pairs; bad rows raise ("error") or are skipped and counted ("skip")."""
    detected = resolve(rows, format)
    pairs, stats = parse_preference_rows(rows, on_bad_row, row_outcome_fn(detected.name, strength_field))
    return pairs, stats, detected


def load_pairs(
    source: Source, format: PreferenceFormat = "auto", strength_field: str | None = None, on_bad_row: OnBadRow = "error",
    split: str | None = None,
) -> tuple[list[PreferencePair], LoadStats, Detected]:
    """Read (path) or take (rows) pair rows of any format here and parse them; unreadable lines count as bad.

    `split`: keep only rows whose `split` column has this value (None: every row).
    """
    rows, unreadable = source_rows(source, on_bad_row)
    if split is not None:
        rows = [r for r in rows if r.data.get("split") == split]
    pairs, stats, detected = parse_pairs(rows, format, strength_field, on_bad_row)
    stats.rows += unreadable
    stats.skipped_bad += unreadable
    return pairs, stats, detected


def scored_pair(row: Row, name: str, strength_field: str | None = None) -> tuple[Texts, bool]:
    """(prompt, chosen, rejected) of a row of pair format `name` for scoring, and whether it is a tie.

    Nothing is dropped: a tie (magnitude 0, or a HelpSteer2 row whose strength is 0 or fails aggregation) keeps its
    texts in file order (HelpSteer2: response_1, response_2) and is flagged, so evaluation can leave it out of the
    accuracy and say how many it left out.
    """
    if name != "helpsteer2":
        return PAIR_TEXTS[name](row), magnitude(row, strength_field) == 0
    outcome = preference_row_outcome(row)
    if isinstance(outcome, PreferencePair):
        return (outcome.prompt, outcome.chosen, outcome.rejected), False
    return (row.data["prompt"], row.data["response_1"], row.data["response_2"]), True


PromptSource = Literal["prompt", "messages"] | PreferenceFormat


def prompt_source(rows: Sequence[Row]) -> Detected:
    """Where the prompts of `rows` are: a string `prompt` field, `messages` (all but a final assistant reply), or
    the prompt of a pair format (`detect_format`)."""
    if not rows or isinstance(rows[0].data.get("prompt"), str):
        return Detected("prompt", f"{rows[0].source if rows else 'no rows'} has a string 'prompt'")
    if "messages" in rows[0].data:
        return Detected("messages", f"{rows[0].source} has 'messages' (the turns before the last assistant reply)")
    return detect_format(rows)


def row_prompt(row: Row, source: str) -> str:
    """The prompt of one row whose prompts are in `source` (a `prompt_source` name)."""
    if source in ("prompt", "helpsteer2", "explicit"):
        return require_text(row, "prompt")
    if source == "messages":
        messages = require_messages(row, "messages")
        turns = messages[:-1] if messages[-1]["role"] == "assistant" else messages
        return prompt_text(row, "messages", turns)
    return PAIR_TEXTS[source](row)[0]
