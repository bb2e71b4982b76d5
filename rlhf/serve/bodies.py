"""Request bodies of the reward-model server (`rlhf.serve`), checked field by field before any model work.

`/score` takes one item or a JSON list of items; an item is `{prompt, response}` or `{messages: [...]}` (turns
alternating user/assistant, the last one the response). `/get_reward` takes OpenRLHF's `{"query": [text, ...]}`
(`prompts` and `labels` may come along and are ignored). Every problem is a `RequestError` carrying an HTTP status
and the path of the field (`body[2].response`, `query[0]`), so the client reads one clear message. Only structure is
checked here (pure Python, no tokenizer): token limits are checked where the RM's tokenizer lives (`serve_api`).
An empty prompt is rejected; an empty response is accepted, because policies do emit empty responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhf.data.rows import SURROGATE, is_blank
from rlhf.data.templates import Message

ROLE_SEPARATORS = {"user": "\n<extra_id_1>User\n", "assistant": "\n<extra_id_1>Assistant\n"}


class RequestError(ValueError):
    """Bad input: `status` is the HTTP code (400, 413, 422), `field` the JSON path of the offending value."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def body(self) -> dict[str, str]:
        return {"detail": str(self), "field": self.field}


@dataclass(frozen=True)
class Item:
    """One thing to score: the raw prompt (HelpSteer2 multi-turn form) and the response, before any template."""

    prompt: str
    response: str


@dataclass(frozen=True)
class ScoreRequest:
    """A parsed `/score` body; `single` says whether it was one object (answered by one object) or a list."""

    items: tuple[Item, ...]
    single: bool


@dataclass(frozen=True)
class OpenRLHFBody:
    """The decoded JSON body of a `/get_reward` call, tagged so the model worker knows which shape it has."""

    body: Any


def _type_name(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _string(obj: dict[str, Any], key: str, where: str, allow_empty: bool) -> str:
    if key not in obj:
        raise RequestError(422, f"{where}.{key}", "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise RequestError(422, f"{where}.{key}", f"expected a string, got {_type_name(value)}")
    check_encodable(value, f"{where}.{key}")
    if not allow_empty and is_blank(value):
        raise RequestError(422, f"{where}.{key}", "empty text")
    return value


def check_encodable(text: str, where: str) -> None:
    """Unpaired surrogates (`"\\ud800"` is valid JSON) are not text: no tokenizer can encode them."""
    found = SURROGATE.search(text)
    if found:
        raise RequestError(422, where, f"unpaired surrogate {found[0].encode('unicode_escape').decode()} at character {found.start()} (not valid Unicode text)")


def join_turns(messages: list[Message]) -> str:
    """The inverse of `rlhf.data.templates.split_turns`: user/assistant turns → one HelpSteer2 prompt string."""
    text = messages[0]["content"]
    for message in messages[1:]:
        text += ROLE_SEPARATORS[message["role"]] + message["content"]
    return text


def _messages_item(value: Any, where: str) -> Item:
    if not isinstance(value, list):
        raise RequestError(422, where, f"expected an array of {{role, content}} objects, got {_type_name(value)}")
    if len(value) < 2:
        raise RequestError(422, where, "needs at least a user turn and the assistant response")
    turns: list[Message] = []
    for i, turn in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(turn, dict):
            raise RequestError(422, at, f"expected an object, got {_type_name(turn)}")
        role = _string(turn, "role", at, allow_empty=False)
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise RequestError(422, f"{at}.role", f"expected {expected!r} (turns alternate user/assistant, starting with user), got {role!r}")
        turns.append({"role": role, "content": _string(turn, "content", at, allow_empty=i == len(value) - 1)})
    if turns[-1]["role"] != "assistant":
        raise RequestError(422, f"{where}[{len(value) - 1}].role", "the last turn must be the assistant response to score")
    return Item(join_turns(turns[:-1]), turns[-1]["content"])


def parse_item(value: Any, where: str) -> Item:
    """One `{prompt, response}` or `{messages}` object."""
    if not isinstance(value, dict):
        raise RequestError(422, where, f"expected an object with prompt and response, or messages; got {_type_name(value)}")
    if "messages" in value:
        if "prompt" in value or "response" in value:
            raise RequestError(422, f"{where}.messages", "give either messages or prompt/response, not both")
        return _messages_item(value["messages"], f"{where}.messages")
    return Item(_string(value, "prompt", where, allow_empty=False), _string(value, "response", where, allow_empty=True))


def _bounded_list(value: list[Any], where: str, max_items: int) -> None:
    if not value:
        raise RequestError(422, where, "empty list: nothing to score")
    if len(value) > max_items:
        raise RequestError(413, where, f"{len(value)} items; this server takes at most {max_items} per request")


def parse_score(body: Any, max_items: int) -> ScoreRequest:
    """A `/score` body: one item object, or a list of at most `max_items` of them."""
    if isinstance(body, list):
        _bounded_list(body, "body", max_items)
        return ScoreRequest(tuple(parse_item(v, f"body[{i}]") for i, v in enumerate(body)), single=False)
    if isinstance(body, dict):
        return ScoreRequest((parse_item(body, "body"),), single=True)
    raise RequestError(422, "body", f"expected an object or an array of objects, got {_type_name(body)}")


def parse_get_reward(body: Any, max_items: int) -> tuple[str, ...]:
    """An OpenRLHF `/get_reward` body `{"query": [text, ...]}` → the texts (already rendered by the client)."""
    if not isinstance(body, dict):
        raise RequestError(422, "body", f'expected an object {{"query": [...]}}, got {_type_name(body)}')
    if "query" not in body:
        raise RequestError(422, "query", "missing")
    queries = body["query"]
    if not isinstance(queries, list):
        raise RequestError(422, "query", f"expected an array of strings, got {_type_name(queries)}")
    _bounded_list(queries, "query", max_items)
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise RequestError(422, f"query[{i}]", f"expected a string, got {_type_name(q)}")
        check_encodable(q, f"query[{i}]")
        if is_blank(q):
            raise RequestError(422, f"query[{i}]", "empty text")
    return tuple(queries)
