"""Conversations in rows: TRL `{role, content}` message lists and hh-rlhf `\\n\\nHuman:` / `\\n\\nAssistant:` transcripts.

Both become a prompt (the turns before the last assistant reply, written as a HelpSteer2 prompt string by
`rlhf.data.templates.join_turns`, so every template renders them like any other conversation) and a reply. Errors
name the row's file, line and field (`chosen[2].role`). Roles are "user" and "assistant"; a "system" message is
refused (the system message is the template's, `TemplateSpec.system`). The empty-text policy: an empty reply is a
real response and is kept; an empty prompt is an error. Left out: tool/function-call messages, multimodal content.
"""

from __future__ import annotations

import re
from typing import Any

from rlhf.data.rows import Row, field_error, has_field, require_field, require_text
from rlhf.data.templates import Message, join_turns

ROLES = ("user", "assistant")
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def require_response(row: Row, name: str) -> str:
    """A response field: any string, empty included (policies do produce empty replies)."""
    value = require_field(row, name)
    if not isinstance(value, str):
        raise field_error(row, name, f"expected a string, got {type(value).__name__}")
    return value


def check_prompt(row: Row, name: str, prompt: str) -> str:
    """`prompt` itself; an empty or whitespace-only prompt is a BadRowError on field `name`."""
    if not prompt.strip():
        raise field_error(row, name, "the prompt is empty (an empty reply is kept, an empty prompt is an error)")
    return prompt


def require_messages(row: Row, name: str, value: Any = None) -> list[Message]:
    """Field `name` (or `value`) as a non-empty list of `{role, content}` messages with known roles."""
    value = require_field(row, name) if value is None else value
    if not isinstance(value, list) or not value:
        raise field_error(row, name, "expected a non-empty list of {role, content} messages")
    messages = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise field_error(row, f"{name}[{i}]", "expected an object with string 'role' and 'content'")
        if m["role"] == "system":
            raise field_error(row, f"{name}[{i}].role", "'system' messages are not supported (the template's system message is data.template.system)")
        if m["role"] not in ROLES:
            raise field_error(row, f"{name}[{i}].role", f"unknown role {m['role']!r}; expected 'user' or 'assistant'")
        messages.append({"role": m["role"], "content": m["content"]})
    return messages


def prompt_text(row: Row, name: str, messages: list[Message]) -> str:
    """The prompt string of the turns `messages`, which must start with a user turn and not be empty."""
    if not messages or messages[0]["role"] != "user":
        got = repr(messages[0]["role"]) if messages else "no turns"
        raise field_error(row, name, f"the prompt must start with a user turn, got {got}")
    return check_prompt(row, name, join_turns(messages))


def parse_transcript(row: Row, name: str) -> list[Message]:
    """An hh-rlhf transcript `"\\n\\nHuman: …\\n\\nAssistant: …"` as messages (each turn's text stripped)."""
    text = require_response(row, name)
    parts = _HH_TURN.split(text)  # [before, role, text, role, text, ...]
    if parts[0].strip():
        raise field_error(row, name, "text before the first '\\n\\nHuman:' turn (not an hh-rlhf transcript)")
    roles = parts[1::2]
    if "Assistant" not in roles:
        raise field_error(row, name, "the transcript has no '\\n\\nAssistant:' turn")
    return [{"role": _HH_ROLES[r], "content": t.strip()} for r, t in zip(roles, parts[2::2])]


def split_reply(row: Row, name: str, messages: list[Message]) -> tuple[list[Message], str]:
    """(the turns before the last message, the last message's text), which must be the assistant's reply."""
    if messages[-1]["role"] != "assistant":
        raise field_error(row, name, f"the conversation must end with the assistant's reply, got a {messages[-1]['role']!r} turn last")
    return messages[:-1], messages[-1]["content"]


def shared_turns(row: Row, chosen: list[Message], rejected: list[Message]) -> tuple[str, str, str]:
    """(prompt, chosen reply, rejected reply) of two whole conversations that share every turn but the last reply.

    Raises:
        BadRowError: a conversation does not end with an assistant reply, or the earlier turns differ.
    """
    chosen_turns, chosen_reply = split_reply(row, "chosen", chosen)
    rejected_turns, rejected_reply = split_reply(row, "rejected", rejected)
    if chosen_turns != rejected_turns:
        where = next((i for i, (a, b) in enumerate(zip(chosen_turns, rejected_turns)) if a != b), min(len(chosen_turns), len(rejected_turns)))
        raise field_error(row, "rejected", f"mismatched shared turns: turn {where + 1} differs from 'chosen' "
                          f"({len(chosen_turns)} vs {len(rejected_turns)} turns before the last reply)")
    return prompt_text(row, "chosen", chosen_turns), chosen_reply, rejected_reply


def is_transcript(value: object) -> bool:
    """True for text that looks like an hh-rlhf transcript (starts with a Human turn, has an Assistant turn)."""
    return isinstance(value, str) and value.lstrip(" ").startswith("\n\nHuman:") and "\n\nAssistant:" in value



def response_texts(row: Row) -> tuple[str, str]:
    """(prompt, response) of a single-response row: `{prompt, response}`, or conversational `{messages}` ending with
    the assistant reply (the turns before it are the prompt)."""
    if has_field(row, "messages"):
        turns, reply = split_reply(row, "messages", require_messages(row, "messages"))
        return prompt_text(row, "messages", turns), reply
    return require_text(row, "prompt"), require_response(row, "response")
