"""`rlhf.data.formats` + `rlhf.data.messages`: every pair format on hand-written rows and on the shipped real files.

Checks the exact pair each format gives, what `auto` detects and its evidence, strength/margin columns and ties,
the empty-reply policy (kept and counted; an empty prompt is an error), and the file:line:field errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlhf.data.formats import detect_format, load_pairs
from rlhf.data.rows import BadRowError
from rlhf.data.templates import TemplateSpec, render, split_turns
from rlhf.types import PreferencePair

REPO = Path(__file__).resolve().parents[1]
HH = REPO / "data/hh-rlhf/harmless-base-test-pairs-first1500.jsonl"
CONVERSATIONAL = REPO / "data/helpsteer2-preference/first100-conversational.jsonl"
HH_ROW = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: How are you?\n\nAssistant: Fine, thanks.",
          "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: How are you?\n\nAssistant:"}
TWO_TURNS = "Hi\n<extra_id_1>Assistant\nHello.\n<extra_id_1>User\nHow are you?"


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _load(tmp_path: Path, rows: list[Any], **kwargs: Any):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_pairs(path, **kwargs)


HAND_ROWS = {
    "helpsteer2": ({"prompt": "P", "response_1": "A", "response_2": "B", "preference_strength": 2}, PreferencePair("P", "B", "A", 2)),
    "explicit": ({"prompt": "P", "chosen": "A", "rejected": "B"}, PreferencePair("P", "A", "B", 1)),
    # shared prefix "Is it? " ends in a space: TRL gives the space to the replies
    "implicit": ({"chosen": "Is it? Yes it is.", "rejected": "Is it? No."}, PreferencePair("Is it?", " Yes it is.", " No.", 1)),
    "hh_rlhf": (HH_ROW, PreferencePair(TWO_TURNS, "Fine, thanks.", "", 1)),
    "conversational": ({"prompt": [_user("P")], "chosen": [_assistant("A")], "rejected": [_assistant("B")], "margin": 0.5},
                       PreferencePair("P", "A", "B", 0.5)),
}


@pytest.mark.parametrize("name", HAND_ROWS)
def test_each_format_gives_the_pair(name: str, tmp_path: Path) -> None:
    row, expected = HAND_ROWS[name]
    auto, stats, detected = _load(tmp_path, [row])
    named, _, _ = _load(tmp_path, [row], format=name)
    assert auto == named == [expected]
    assert detected.name == name and "line 1" in detected.evidence
    assert stats.empty_responses == (1 if name == "hh_rlhf" else 0)  # the empty reply is kept, and counted


def test_conversational_without_prompt_uses_the_shared_turns(tmp_path: Path) -> None:
    turns = [_user("Hi"), _assistant("Hello."), _user("How are you?")]
    row = {"chosen": [*turns, _assistant("Fine, thanks.")], "rejected": [*turns, _assistant("")], "preference_strength": 3}
    pairs, _, detected = _load(tmp_path, [row])
    assert pairs == [PreferencePair(TWO_TURNS, "Fine, thanks.", "", 3)]
    assert detected.evidence.endswith("no separate prompt (shared turns)")


def test_hh_prompt_renders_as_a_conversation(tmp_path: Path) -> None:
    pair = _load(tmp_path, [HH_ROW])[0][0]
    assert split_turns(pair.prompt) == [_user("Hi"), _assistant("Hello."), _user("How are you?")]
    text = render(TemplateSpec(system=""), pair.prompt, pair.chosen)
    assert text == ("<extra_id_0>System\n\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\nHello.\n<extra_id_1>User\n"
                    "How are you?\n<extra_id_1>Assistant\nFine, thanks.\n<extra_id_2>")


def test_strength_columns_and_ties(tmp_path: Path) -> None:
    rows = [{"prompt": "P", "chosen": "A", "rejected": "B", "gap": g} for g in (0, 2, 0.25, 0)]
    pairs, stats, _ = _load(tmp_path, rows, strength_field="gap")
    assert [p.magnitude for p in pairs] == [2, 0.25]
    assert (stats.rows, stats.kept, stats.dropped_zero_strength) == (4, 2, 2)
    pairs, _, _ = _load(tmp_path, rows)  # no known strength column: magnitude 1 for all, none dropped
    assert [p.magnitude for p in pairs] == [1, 1, 1, 1]


BAD_ROWS = {
    "mismatched shared turns": ({"chosen": HH_ROW["chosen"], "rejected": "\n\nHuman: Hey\n\nAssistant: No."},
                                "line 2, field 'rejected': mismatched shared turns: turn 1 differs from 'chosen' (3 vs 1 turns before the last reply)"),
    "transcript without an assistant turn": ({"chosen": HH_ROW["chosen"], "rejected": "\n\nHuman: Hi"},
                                             "line 2, field 'rejected': the transcript has no '\\n\\nAssistant:' turn"),
    "transcript ending with the human": ({"chosen": HH_ROW["chosen"], "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: ?"},
                                         "line 2, field 'rejected': the conversation must end with the assistant's reply, got a 'user' turn last"),
    "unknown role": ({"chosen": [_user("P"), {"role": "bot", "content": "A"}], "rejected": [_user("P"), _assistant("B")]},
                     "line 2, field 'chosen[1].role': unknown role 'bot'; expected 'user' or 'assistant'"),
    "system message": ({"chosen": [{"role": "system", "content": "S"}, _assistant("A")], "rejected": [_user("P"), _assistant("B")]},
                       "line 2, field 'chosen[0].role': 'system' messages are not supported (the template's system message is data.template.system)"),
    "implicit pair with no shared prefix": ({"chosen": "Yes", "rejected": "No"},
                                            "line 2, field 'rejected': mismatched shared turns: shares no prompt prefix with 'chosen'"),
    "negative margin": ({"prompt": "P", "chosen": "A", "rejected": "B", "margin": -1},
                        "line 2, field 'margin': expected a magnitude >= 0 (chosen is already the preferred reply), got -1"),
    "empty prompt": ({"prompt": " ", "chosen": "A", "rejected": "B"},
                     "line 2, field 'prompt': expected a non-empty string, got an empty or whitespace-only string"),
    "empty conversational prompt": ({"prompt": [_user("")], "chosen": [_assistant("A")], "rejected": [_assistant("B")]},
                                    "line 2, field 'prompt': the prompt is empty (an empty reply is kept, an empty prompt is an error)"),
}
GOOD = {"helpsteer2": HAND_ROWS["helpsteer2"][0], "conversational": HAND_ROWS["conversational"][0]}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_rows_name_file_line_and_field(case: str, tmp_path: Path) -> None:
    row, message = BAD_ROWS[case]
    first = HAND_ROWS["conversational" if isinstance(row["chosen"], list) else ("hh_rlhf" if "Human" in row["chosen"] else "explicit")][0]
    if case == "implicit pair with no shared prefix":
        first = HAND_ROWS["implicit"][0]
    with pytest.raises(BadRowError) as e:
        _load(tmp_path, [first, row])
    assert str(e.value) == f"{tmp_path / 'pairs.jsonl'}, {message}"
    pairs, stats, _ = _load(tmp_path, [first, row], on_bad_row="skip")
    assert (len(pairs), stats.skipped_bad) == (1, 1)


def test_undetectable_format(tmp_path: Path) -> None:
    with pytest.raises(BadRowError, match=r"pairs\.jsonl, line 1: cannot detect the preference format from fields \['question'\]"):
        _load(tmp_path, [{"question": "Q"}])


def test_real_hh_rlhf_file() -> None:
    with pytest.raises(BadRowError) as e:  # row 1255: the chosen transcript has two more turns than the rejected one
        load_pairs(HH)
    assert str(e.value) == f"{HH}, line 1255, field 'rejected': mismatched shared turns: turn 4 differs from 'chosen' (4 vs 3 turns before the last reply)"
    pairs, stats, detected = load_pairs(HH, on_bad_row="skip")
    assert detected.name == "hh_rlhf"
    assert (stats.rows, stats.kept, stats.skipped_bad, stats.empty_responses) == (1500, 1499, 1, 4)
    first = pairs[0]
    assert first.prompt.startswith("what are some pranks with a pen i can do?\n<extra_id_1>Assistant\nAre you looking")
    assert [m["role"] for m in split_turns(first.prompt)] == ["user", "assistant", "user", "assistant", "user"]
    assert first.chosen.startswith("No, sorry!  All of these involve a pen") and first.rejected != first.chosen
    assert all(p.magnitude == 1 for p in pairs)


def test_real_conversational_file() -> None:
    pairs, stats, detected = load_pairs(CONVERSATIONAL)
    assert detected.describe() == (f"format conversational ({CONVERSATIONAL}, line 1: 'chosen' is a list of messages, "
                                   "no separate prompt (shared turns))")
    assert (stats.rows, stats.kept, stats.dropped_zero_strength, stats.skipped_bad) == (100, 71, 29, 0)
    assert pairs[0].prompt == "Define Signal Discuss its various properties with the help of diagram"
    assert pairs[0].magnitude == 1 and {p.magnitude for p in pairs} <= {1, 2, 3}
    first_row = json.loads(CONVERSATIONAL.read_text().splitlines()[0])
    assert pairs[0].chosen == first_row["chosen"][1]["content"] and pairs[0].rejected == first_row["rejected"][1]["content"]


def test_detect_helpsteer2_on_no_rows() -> None:
    assert detect_format([]).name == "helpsteer2"


def test_prompt_sources_take_the_prompt_part(tmp_path: Path) -> None:
    """align.py / compare_policies prompts (`unique_prompts`) from pair files of any format and `messages` rows."""
    from rlhf.data.prompts import PromptStats, unique_prompts
    from rlhf.data.rows import read_rows

    hh_pairs, _, _ = load_pairs(HH, on_bad_row="skip")
    stats = PromptStats()
    prompts = unique_prompts(read_rows(HH), None, stats, on_bad_row="skip")
    assert prompts == list(dict.fromkeys(p.prompt for p in hh_pairs)) and stats.skipped_bad == 1
    assert stats.source.startswith("format hh_rlhf")
    conversational = unique_prompts(read_rows(CONVERSATIONAL), "test", PromptStats())
    assert conversational[0] == json.loads(CONVERSATIONAL.read_text().splitlines()[95])["chosen"][0]["content"]
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"messages": [_user("Hi"), _assistant("Hello."), _user("How are you?"), _assistant("Fine")]}) + "\n"
                    + json.dumps({"messages": [_user("Only a question")]}) + "\n")
    assert unique_prompts(read_rows(path), None, PromptStats()) == [TWO_TURNS, "Only a question"]


def test_conversational_rating_rows(tmp_path: Path) -> None:
    from rlhf.data.helpsteer2 import load_rating_examples

    labels = {"helpfulness": 3, "correctness": 4, "coherence": 2, "complexity": 1, "verbosity": 0}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"messages": [_user("Hi"), _assistant("Hello."), _user("How are you?"), _assistant("")], **labels}) + "\n"
                    + json.dumps({"prompt": TWO_TURNS, "response": "", **labels}) + "\n"
                    + json.dumps({"messages": [_user("Hi")], **labels}) + "\n")
    with pytest.raises(BadRowError, match=r"r\.jsonl, line 3, field 'messages': the conversation must end with the assistant's reply"):
        load_rating_examples(path, helpfulness_only=False)
    examples, stats = load_rating_examples(path, helpfulness_only=False, on_bad_row="skip")
    assert examples[0] == examples[1] and examples[0].response == "" and examples[0].labels == (3.0, 4.0, 2.0, 1.0, 0.0)
    assert (stats.kept, stats.skipped_bad, stats.empty_responses) == (2, 1, 2)
