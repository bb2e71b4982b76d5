"""Prompt + response -> model text, as pure string functions (spec §1.3).

- `render_steerlm`: the NeMo-Aligner SteerLM/regression template, "<extra_id_0>System ... <extra_id_2>".
- `render_chat`: a tokenizer's own chat template, passed in as its `apply_chat_template` method (duck-typed,
  so this module never imports transformers).
`split_turns` recovers HelpSteer2's multi-turn message list and `join_turns` writes one (how hh-rlhf and TRL
conversations become a prompt string). Left out: tokenisation, truncation and the
length filter (the data module's job), and generation prompts for the policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

STEERLM_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
_ROLES = {"User": "user", "Assistant": "assistant"}
_TURN_SEPARATOR = re.compile(r"\n<extra_id_1>(User|Assistant)\n")

Message = dict[str, str]
"""{"role": "system" | "user" | "assistant", "content": str}"""


def split_turns(prompt: str) -> list[Message]:
    """Split a HelpSteer2 prompt into messages; the first is the user's, then one per separator.

    Turns are joined in HelpSteer2 as "{user 1}\\n<extra_id_1>Assistant\\n{assistant 1}\\n<extra_id_1>User\\n{user 2}";
    each separator's role names the turn after it (in HelpSteer2 they alternate). A single-turn prompt gives
    one user message with the prompt unchanged.
    """
    parts = _TURN_SEPARATOR.split(prompt)  # [text, role, text, role, text, ...]
    messages = [{"role": "user", "content": parts[0]}]
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": _ROLES[role], "content": content})
    return messages


def join_turns(messages: list[Message]) -> str:
    """The HelpSteer2 prompt string of user/assistant `messages` (the first a user's): `split_turns`'s inverse."""
    names = {role: name for name, role in _ROLES.items()}
    text = messages[0]["content"]
    for message in messages[1:]:
        text += f"\n<extra_id_1>{names[message['role']]}\n{message['content']}"
    return text


def render_steerlm(messages: list[Message], response: str, system: str = STEERLM_SYSTEM) -> str:
    """The SteerLM template; rendering `split_turns(prompt)` gives the same text as inserting `prompt` raw."""
    text = f"<extra_id_0>System\n{system}\n"
    for message in messages:
        role = "User" if message["role"] == "user" else "Assistant"
        text += f"<extra_id_1>{role}\n{message['content']}\n"
    return text + f"<extra_id_1>Assistant\n{response}\n<extra_id_2>"


def render_chat(
    messages: list[Message],
    response: str,
    apply_chat_template: Callable[..., Any],
    system: str | None = None,
    has_template: bool = True,
) -> str:
    """Render with a tokenizer's chat template (`tokenize=False`), the response as the final assistant turn.

    Args:
        messages: the prompt's turns, e.g. from `split_turns`.
        response: the final assistant turn.
        apply_chat_template: the tokenizer's bound `apply_chat_template` method.
        system: a system message to prepend; None or "" for none.
        has_template: False when the tokenizer has no chat template (`tokenizer.chat_template is None`).

    Raises:
        ValueError: the tokenizer has no chat template, or applying it failed with a ValueError.
    """
    if not has_template:
        raise ValueError("the tokenizer has no chat template; use TemplateSpec(name='steerlm') or set one")
    conversation = ([{"role": "system", "content": system}] if system else []) + list(messages)
    conversation.append({"role": "assistant", "content": response})
    try:
        text = apply_chat_template(conversation, tokenize=False)
    except ValueError as e:  # transformers raises ValueError when no template is set
        raise ValueError(f"the tokenizer's chat template could not be applied: {e}") from e
    if not isinstance(text, str):
        raise ValueError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, expected str")
    return text


@dataclass(frozen=True)
class TemplateSpec:
    """Which text template turns (prompt, response) into model input.

    Args:
        name: "steerlm" for the NeMo-Aligner template of spec §1.3 (the paper's); "chat" for the tokenizer's
            own chat template (as the HF release of the reward model is used).
        system: the system message; "" leaves the SteerLM system slot empty and adds no chat system turn.
    """

    name: Literal["steerlm", "chat"] = "steerlm"
    system: str = STEERLM_SYSTEM


def render(spec: TemplateSpec, prompt: str, response: str, tokenizer: Any = None) -> str:
    """Render one example: split the prompt's turns, then apply the template `spec` names.

    Raises:
        ValueError: "chat" without a tokenizer or with one that has no chat template; an unknown name.
    """
    messages = split_turns(prompt)
    if spec.name == "steerlm":
        return render_steerlm(messages, response, spec.system)
    if spec.name == "chat":
        if tokenizer is None:
            raise ValueError("TemplateSpec(name='chat') needs a tokenizer")
        has_template = getattr(tokenizer, "chat_template", None) is not None
        return render_chat(messages, response, tokenizer.apply_chat_template, spec.system or None, has_template)
    raise ValueError(f"unknown template {spec.name!r}; expected 'steerlm' or 'chat'")
