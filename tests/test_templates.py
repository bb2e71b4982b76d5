"""`rlhf.data.templates`: the exact spec §1.3 string, multi-turn splitting, chat templates via a fake tokenizer."""

from __future__ import annotations

from typing import Any

import pytest

from rlhf.data.templates import STEERLM_SYSTEM, TemplateSpec, render, render_chat, render_steerlm, split_turns

MULTI_TURN = "Hi there\n<extra_id_1>Assistant\nHello! How can I help?\n<extra_id_1>User\nTell me a joke."


def test_spec_string_single_turn() -> None:
    expected = (
        "<extra_id_0>System\nA chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions.\n"
        "<extra_id_1>User\nWhat is 2+2?\n<extra_id_1>Assistant\n4\n<extra_id_2>"
    )
    assert render(TemplateSpec(), "What is 2+2?", "4") == expected
    assert render_steerlm(split_turns("What is 2+2?"), "4") == expected


def test_empty_system() -> None:
    text = render(TemplateSpec(system=""), "Tell me about the cat.", "The cat says meow.")
    assert text == (
        "<extra_id_0>System\n\n<extra_id_1>User\nTell me about the cat.\n"
        "<extra_id_1>Assistant\nThe cat says meow.\n<extra_id_2>"
    )


def test_split_turns_multi_turn() -> None:
    assert split_turns(MULTI_TURN) == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert split_turns("one turn\nwith a newline") == [{"role": "user", "content": "one turn\nwith a newline"}]


def test_multi_turn_round_trip_equals_raw_insertion() -> None:
    raw = f"<extra_id_0>System\n{STEERLM_SYSTEM}\n<extra_id_1>User\n{MULTI_TURN}\n"
    raw += "<extra_id_1>Assistant\nWhy?\n<extra_id_2>"
    assert render_steerlm(split_turns(MULTI_TURN), "Why?") == raw
    assert render(TemplateSpec(), MULTI_TURN, "Why?") == raw


class FakeTokenizer:
    """Duck-types a HF tokenizer's chat template: one line per message, like a tiny Jinja template would."""

    def __init__(self, chat_template: str | None = "fake") -> None:
        self.chat_template = chat_template
        self.calls: list[dict[str, Any]] = []

    def apply_chat_template(self, conversation: list[dict[str, str]], tokenize: bool = True, **kwargs: Any) -> Any:
        self.calls.append({"tokenize": tokenize, **kwargs})
        if self.chat_template is None:
            raise ValueError("Cannot use chat template functions because tokenizer.chat_template is not set")
        text = "".join(f"[{m['role']}]{m['content']}[/{m['role']}]" for m in conversation)
        return text if not tokenize else [ord(c) for c in text]


def test_chat_template() -> None:
    tokenizer = FakeTokenizer()
    text = render(TemplateSpec(name="chat", system="Be brief."), MULTI_TURN, "Why?", tokenizer)
    assert text == (
        "[system]Be brief.[/system][user]Hi there[/user][assistant]Hello! How can I help?[/assistant]"
        "[user]Tell me a joke.[/user][assistant]Why?[/assistant]"
    )
    assert tokenizer.calls == [{"tokenize": False}]
    no_system = render(TemplateSpec(name="chat", system=""), "Q", "A", tokenizer)
    assert no_system == "[user]Q[/user][assistant]A[/assistant]"


def test_chat_template_missing() -> None:
    with pytest.raises(ValueError, match="no chat template"):
        render(TemplateSpec(name="chat"), "Q", "A", FakeTokenizer(chat_template=None))
    with pytest.raises(ValueError, match="could not be applied: Cannot use chat template"):
        render_chat([{"role": "user", "content": "Q"}], "A", FakeTokenizer(chat_template=None).apply_chat_template)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        render(TemplateSpec(name="chat"), "Q", "A")
