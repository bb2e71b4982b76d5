"""Request parsing of the reward-model server (`rlhf.serve.bodies`), without a server: shapes, messages, field paths;
and the command refusing an API-key variable that is not set."""

from __future__ import annotations

import pytest

from rlhf.data.templates import split_turns
from rlhf.serve.bodies import Item, RequestError, join_turns, parse_get_reward, parse_score


def test_join_turns_inverts_split_turns():
    prompt = "What is a dog like?\n<extra_id_1>Assistant\nA dog barks.\n<extra_id_1>User\nAnd a cat?"
    assert join_turns(split_turns(prompt)) == prompt
    assert join_turns([{"role": "user", "content": "Hi"}]) == "Hi"


def test_score_shapes():
    one = parse_score({"prompt": "a", "response": "", "id": 7}, max_items=2)  # extra fields are ignored
    assert one.single and one.items == (Item("a", ""),)
    many = parse_score([{"prompt": "a", "response": "b"}, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]}], 2)
    assert not many.single and many.items == (Item("a", "b"), Item("q", "r"))


@pytest.mark.parametrize("body, status, field", [
    ([{"prompt": "a", "response": "b"}] * 3, 413, "body"),
    ({"messages": "hi"}, 422, "body.messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}, 422, "body.messages[1].content"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "b"}]}, 422, "body.messages[0].content"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}, 422, "body.messages[2].role"),
    ({"prompt": ["a"], "response": "b"}, 422, "body.prompt"),
    (None, 422, "body"),
])
def test_score_errors_name_the_field(body, status, field):
    with pytest.raises(RequestError) as e:
        parse_score(body, max_items=2)
    assert (e.value.status, e.value.field) == (status, field) and str(e.value).startswith(field + ": ")


def test_get_reward():
    assert parse_get_reward({"query": ["a b", "c"], "prompts": ["a"], "labels": None}, 2) == ("a b", "c")
    with pytest.raises(RequestError, match=r"query: 3 items; this server takes at most 2"):
        parse_get_reward({"query": ["a", "b", "c"]}, 2)
    with pytest.raises(RequestError, match=r"body: expected an object"):
        parse_get_reward([{"query": ["a"]}], 2)


def test_serve_refuses_an_unset_api_key_variable(monkeypatch, capsys):
    from rlhf.serve import server as serve

    monkeypatch.delenv("RLHF_TEST_UNSET_KEY", raising=False)
    with pytest.raises(SystemExit):
        serve.main(["--model", "unused", "--api-key-env", "RLHF_TEST_UNSET_KEY"])
    assert "RLHF_TEST_UNSET_KEY: that environment variable is not set" in capsys.readouterr().err
