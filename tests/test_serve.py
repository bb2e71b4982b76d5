"""The reward-model server end to end: `python -m rlhf.serve` in a subprocess on a free loopback port with a tiny RM.

Checks: `/score` equals offline scoring (≤ 1e-5), truncation flags included; concurrent requests are merged into
dynamic batches and a bad request in a batch fails only itself; every bad-input case gets its 4xx naming the field
and `/health` still answers after it; the OpenRLHF `/get_reward` shape round-trips; align.py runs 2 steps against
the server through `RemoteReward`; a server that is down gives a clear error after the retries; a mean-variance RM
answers μ and σ, and an HF export the same rewards as the checkpoint (in-process, no HTTP).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import torch
import yaml

from rlhf.align.remote_reward import RemoteReward, RemoteRewardError
from rlhf.align.rewards import RewardModelScore
from rlhf.data.templates import TemplateSpec, render
from rlhf.models.backbone import BackboneSpec, LoraSpec
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import build_reward_model
from rlhf.training.checkpoint import save_trained, trained_state_dict

REPO = Path(__file__).resolve().parents[1]
KEY_ENV, KEY = "RLHF_TEST_RM_KEY", "test-key-123"
HEADER_TIMEOUT = 1.5  # the test server's --header-timeout and --body-timeout
RM_TEMPLATE = TemplateSpec(name="steerlm", system="You are a reward model.")
LONG_PROMPT = "Tell me about the sun. " * 10  # ~300 tokens: over the RM's max_length 200, under the server's 400
ITEMS = [
    ("Tell me about the cat.", "The cat is soft."),
    ("What is a dog like?\n<extra_id_1>Assistant\nA dog barks.\n<extra_id_1>User\nAnd a cat?", "A cat purrs."),
    ("Why is the sky blue?", ""),  # an empty response is scored, as policies do emit them
    (LONG_PROMPT, "It is hot."),
]


def _save_rm(tiny_llama_dir: Path, out: Path, head: HeadSpec, seed: int) -> Path:
    torch.manual_seed(seed)
    backbone = BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8))
    model = build_reward_model(backbone, head)
    with torch.no_grad():  # non-zero LoRA, so a server that skipped the adapter would score differently
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.2 * torch.randn_like(p))
    config = yaml.safe_dump({"data": {"class_path": "rlhf.data.datamodules.PreferenceDataModule", "init_args": {
        "template": dataclasses.asdict(RM_TEMPLATE), "max_length": 200}}})
    save_trained(out, trained_state_dict(model), {"backbone": dataclasses.asdict(backbone), "head": dataclasses.asdict(head)}, config)
    return out


@pytest.fixture(scope="module")
def rm_checkpoint(tiny_llama_dir, tmp_path_factory) -> Path:
    return _save_rm(tiny_llama_dir, tmp_path_factory.mktemp("serve-rm") / "checkpoint", HeadSpec(), seed=3)


@pytest.fixture(scope="module")
def offline(rm_checkpoint) -> RewardModelScore:
    source = RewardModelScore(str(rm_checkpoint), batch_size=3)
    source.build()
    return source


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    url: str
    log: Path
    pid: int

    def post(self, path: str, body, key: str | None = KEY, raw: bool = False) -> requests.Response:
        headers = {"X-API-Key": key} if key else {}
        data = body if raw else json.dumps(body)
        return requests.post(self.url + path, data=data, headers={**headers, "Content-Type": "application/json"}, timeout=30)

    def healthy(self) -> bool:
        return requests.get(self.url + "/health", headers={"X-API-Key": KEY}, timeout=10).status_code == 200


@pytest.fixture(scope="module")
def server(rm_checkpoint, tmp_path_factory):
    port, log = _free_port(), tmp_path_factory.mktemp("serve-log") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", KEY_ENV: KEY}
    command = [sys.executable, "-m", "rlhf.serve", "--model", str(rm_checkpoint), "--port", str(port), "--accelerator", "cpu",
               "--api-key-env", KEY_ENV, "--max-items", "8", "--max-item-tokens", "400", "--max-body-bytes", "20000",
               "--max-batch-size", "8", "--batch-timeout", "0.2", "--forward-batch-size", "4",
               "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(HEADER_TIMEOUT)]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    handle = Server(f"http://127.0.0.1:{port}", log, proc.pid)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"server exited:\n{log.read_text()[-3000:]}"
            try:
                if handle.healthy():
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"server not healthy in time:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield handle
    finally:
        proc.send_signal(signal.SIGTERM)  # LitServe's graceful shutdown: HTTP and model workers end too
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_score_equals_offline_scoring(server, offline):
    prompts, responses = zip(*ITEMS)
    expected = offline.score(prompts, responses)
    answer = server.post("/score", [{"prompt": p, "response": r} for p, r in ITEMS])
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    torch.testing.assert_close(torch.tensor([r["reward"] for r in results]), expected, atol=1e-5, rtol=0)
    assert [r["truncated"] for r in results] == [False, False, False, True]
    assert all(list(r["outputs"]) == ["helpfulness"] and r["outputs"]["helpfulness"] == r["reward"] for r in results)

    single = server.post("/score", {"prompt": ITEMS[0][0], "response": ITEMS[0][1]}).json()  # one object in, one out
    assert single["reward"] == pytest.approx(expected[0].item(), abs=1e-5) and single["truncated"] is False
    messages = [{"role": "user", "content": "What is a dog like?"}, {"role": "assistant", "content": "A dog barks."},
                {"role": "user", "content": "And a cat?"}, {"role": "assistant", "content": "A cat purrs."}]
    assert server.post("/score", {"messages": messages}).json()["reward"] == pytest.approx(expected[1].item(), abs=1e-5)

    client = RemoteReward(server.url, timeout=30, retries=0, api_key_env=KEY_ENV, batch_size=3)
    os.environ[KEY_ENV] = KEY
    try:
        client.build()
        torch.testing.assert_close(client.score(prompts, responses), expected, atol=1e-5, rtol=0)
    finally:
        del os.environ[KEY_ENV]
    assert client.truncated == 1


def test_get_reward_round_trips_openrlhf_shape(server, offline):
    prompts, responses = zip(*ITEMS[:3])
    queries = [render(RM_TEMPLATE, p, r) for p, r in zip(prompts, responses)]  # the client renders, as OpenRLHF does
    answer = server.post("/get_reward", {"query": queries, "prompts": list(prompts), "labels": ["", "", ""]})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"rewards"}
    torch.testing.assert_close(torch.tensor(answer.json()["rewards"]), offline.score(prompts, responses), atol=1e-5, rtol=0)


def test_concurrent_requests_are_batched_and_a_bad_one_fails_alone(server, offline):
    expected = offline.score(*zip(*ITEMS[:3]))
    start, answers = threading.Barrier(7), {}

    def send(i: int) -> None:
        body = {"prompt": "", "response": "x"} if i == 6 else {"prompt": ITEMS[i % 3][0], "response": ITEMS[i % 3][1]}
        start.wait()
        answers[i] = server.post("/score", body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers[6].status_code == 422 and answers[6].json()["field"] == "body.prompt"
    for i in range(6):
        assert answers[i].status_code == 200, answers[i].text
        assert answers[i].json()["reward"] == pytest.approx(expected[i % 3].item(), abs=1e-5)
    sizes = [int(n) for n in re.findall(r"batch \d+: (\d+) requests", server.log.read_text())]
    assert max(sizes) > 1, f"no dynamic batch formed: {sizes}"


BAD = {  # id: (path, body (str = raw bytes), status, field)
    "malformed-json": ("/score", '{"prompt": "a", "response": ', 400, "body"),
    "empty-body": ("/score", "", 400, "body"),
    "body-too-large": ("/score", json.dumps({"prompt": "a" * 30000, "response": "b"}), 413, "body"),
    "too-many-items": ("/score", [{"prompt": "a", "response": "b"}] * 9, 413, "body"),
    "empty-list": ("/score", [], 422, "body"),
    "not-an-object": ("/score", "hello", 422, "body"),
    "missing-response": ("/score", [{"prompt": "a"}], 422, "body[0].response"),
    "missing-prompt": ("/score", {"response": "a"}, 422, "body.prompt"),
    "prompt-not-a-string": ("/score", {"prompt": 5, "response": "a"}, 422, "body.prompt"),
    "response-null": ("/score", [{"prompt": "a", "response": "b"}, {"prompt": "a", "response": None}], 422, "body[1].response"),
    "item-not-an-object": ("/score", [{"prompt": "a", "response": "b"}, "text"], 422, "body[1]"),
    "empty-prompt": ("/score", {"prompt": "  ", "response": "a"}, 422, "body.prompt"),
    "messages-roles": ("/score", {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, 422, "body.messages[1].role"),
    "messages-and-prompt": ("/score", {"messages": [], "prompt": "a", "response": "b"}, 422, "body.messages"),
    "messages-too-short": ("/score", {"messages": [{"role": "assistant", "content": "a"}]}, 422, "body.messages"),
    "item-over-length": ("/score", [{"prompt": "a", "response": "b"}, {"prompt": "Tell me a story. " * 40, "response": "b"}], 422, "body[1]"),
    "query-missing": ("/get_reward", {"prompts": ["a"]}, 422, "query"),
    "query-not-a-list": ("/get_reward", {"query": "a"}, 422, "query"),
    "query-item-type": ("/get_reward", {"query": ["a", 3]}, 422, "query[1]"),
    "query-empty-text": ("/get_reward", {"query": [""]}, 422, "query[0]"),
    "query-over-length": ("/get_reward", {"query": ["Tell me a story. " * 15]}, 422, "query[0]"),  # raw text is never cut
    "get-reward-malformed": ("/get_reward", "{query", 400, "body"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_gets_its_4xx_and_the_server_lives(server, case):
    path, body, status, field = BAD[case]
    answer = server.post(path, body, raw=isinstance(body, str) and case != "not-an-object")
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and answer.json()["detail"].startswith(f"{field}: ")
    assert server.healthy()


def test_api_key_is_required(server):
    for key in (None, "wrong"):
        answer = server.post("/score", {"prompt": "a", "response": "b"}, key=key)
        assert answer.status_code == 401 and "X-API-Key" in answer.text
        assert server.post("/get_reward", {"query": ["a"]}, key=key).status_code == 401
    assert server.healthy()


def test_align_runs_two_steps_against_the_server(server, tiny_llama_dir, rm_checkpoint, synthetic_dir, tmp_path, monkeypatch):
    from rlhf.cli import align_main
    from tests.test_reinforce_module import Recorder, _fit_args

    monkeypatch.setenv(KEY_ENV, KEY)
    args = [a for a in _fit_args(tiny_llama_dir, rm_checkpoint, synthetic_dir / "preference_train.jsonl", tmp_path) if not a.startswith("--model.reward")]
    args += ["--model.reward=rlhf.align.remote_reward.RemoteReward", f"--model.reward.url={server.url}", f"--model.reward.api_key_env={KEY_ENV}",
             "--model.reward.batch_size=8", "--model.reward.retries=1"]
    cli = align_main(args, run=False)
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2 and len(recorder.steps) == 2
    assert all(math.isfinite(s["train/loss"]) and math.isfinite(s["rollout/score"]) for s in recorder.steps)


def test_remote_reward_gives_a_clear_error_when_the_server_is_down():
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    source = RemoteReward(url, timeout=0.5, retries=2, api_key_env=None, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(RemoteRewardError, match=r"reward server http://127\.0\.0\.1:\d+/health did not answer after 3 tries .*ConnectionError.*rlhf\.serve"):
        source.build()
    assert time.monotonic() - started < 10


def test_remote_reward_reports_a_refused_request(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    source = RemoteReward(server.url, timeout=30, retries=3, api_key_env=KEY_ENV)
    source.build()
    with pytest.raises(RemoteRewardError, match=r"refused the request \(422\): body\[0\]\.prompt: empty text"):
        source.score([""], ["a"])


def test_mean_variance_rm_answers_mu_and_sigma(tiny_llama_dir, tmp_path):
    from rlhf.serve.api import RewardAPI

    checkpoint = _save_rm(tiny_llama_dir, tmp_path / "mv", HeadSpec(kind="mean_var"), seed=4)
    api = RewardAPI(str(checkpoint), max_batch_size=1)
    api.setup("cpu")
    answer = api.encode_response(api.predict(api.decode_request([{"prompt": "Hi there", "response": "Hello"}, {"prompt": "Hi", "response": "A cat."}])))
    offline = RewardModelScore(str(checkpoint))
    offline.build()
    ids = offline.encode(["Hi there", "Hi"], ["Hello", "A cat."])
    for item, seq in zip(answer["results"], ids):
        with torch.no_grad():
            out = api.model(torch.tensor([seq]), torch.ones(1, len(seq), dtype=torch.bool))
        assert item["reward"] == item["mu"] == pytest.approx(out[0, 0].item(), abs=1e-5)
        assert item["sigma"] == pytest.approx(api.model.sigma(out)[0].item(), abs=1e-5) and item["sigma"] > 0


def test_an_hf_export_serves_the_same_rewards(rm_checkpoint, offline, tmp_path):
    from rlhf.reward.export import export_hf
    from rlhf.serve.api import RewardAPI

    api = RewardAPI(str(export_hf(rm_checkpoint, tmp_path / "hf")), max_batch_size=2)
    api.setup("cpu")
    requests_ = [[{"prompt": p, "response": r} for p, r in ITEMS[:2]], {"prompt": ITEMS[2][0], "response": ITEMS[2][1]}]
    answers = [api.encode_response(a) for a in api.predict([api.decode_request(r) for r in requests_])]  # one dynamic batch
    rewards = [r["reward"] for r in answers[0]["results"]] + [answers[1]["reward"]]
    torch.testing.assert_close(torch.tensor(rewards), offline.score(*zip(*ITEMS[:3])), atol=1e-5, rtol=0)


def test_unencodable_requests_fail_alone_among_good_ones(server, offline):
    """2 requests with a lone surrogate (valid JSON, not text) + 8 good ones, all at once: the good ones get their rewards."""
    expected = offline.score(*zip(*ITEMS[:3]))
    bad = {8: ("/get_reward", {"query": ["hi \ud800"]}, "query[0]"), 9: ("/score", {"prompt": "hi \udfff", "response": "x"}, "body.prompt")}
    start, answers = threading.Barrier(10), {}

    def send(i: int) -> None:
        path, body = (bad[i][0], bad[i][1]) if i in bad else ("/score", {"prompt": ITEMS[i % 3][0], "response": ITEMS[i % 3][1]})
        start.wait()
        answers[i] = server.post(path, body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (_, _, field) in bad.items():
        assert answers[i].status_code == 422 and answers[i].json()["field"] == field and "unpaired surrogate" in answers[i].text, answers[i].text
    for i in range(8):
        assert answers[i].status_code == 200, answers[i].text
        assert answers[i].json()["reward"] == pytest.approx(expected[i % 3].item(), abs=1e-5)


def _raw_request(server: Server, data: bytes, wait: float) -> tuple[bytes, float]:
    """Send raw bytes on a fresh loopback connection; return what came back before the server closed it (or `wait`
    passed), and how long the first byte of it took."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(data)
        reply, first = b"", None
        try:
            while chunk := sock.recv(65536):
                reply, first = reply + chunk, first or time.monotonic() - started
        except socket.timeout:
            reply += b"<still open>"
    return reply, first if first is not None else float("inf")


def test_the_key_is_checked_before_any_body_is_read(server):
    headers = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 19000\r\n\r\n"
    reply, took = _raw_request(server, headers + b'{"prompt": "', wait=HEADER_TIMEOUT / 2)  # the body never completes
    assert reply.startswith(b"HTTP/1.1 401") and b"X-API-Key" in reply and took < HEADER_TIMEOUT / 2, reply

    import psutil

    def rss() -> int:
        tree = psutil.Process(server.pid)
        return sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])

    before = rss()
    socks = []
    for _ in range(40):  # 40 keyless clients, each sending 19 kB of a declared 19 kB-plus body, then stalling
        sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5)
        sock.sendall(headers + b"x" * 18000)
        socks.append(sock)
    time.sleep(0.5)
    grown = rss() - before
    for sock in socks:
        sock.close()
    assert grown < 20_000_000, f"server memory grew by {grown / 1e6:.1f} MB for 40 keyless stalled bodies"
    assert server.healthy()


@pytest.mark.parametrize("case", ["idle-socket", "half-headers", "trickled-headers", "stalled-body"])
def test_stalled_connections_get_408_and_are_closed(server, case):
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT + 3) as sock:
        if case == "half-headers":
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
        elif case == "trickled-headers":
            for byte in b"POST /score HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + KEY.encode():  # one byte every 0.25 s
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.25)
                if time.monotonic() - started > HEADER_TIMEOUT + 2:
                    break
        elif case == "stalled-body":
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"pro")
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), (case, reply)
    assert took < HEADER_TIMEOUT + 1.5, f"{case}: closed after {took:.1f} s"
    assert server.healthy()


def test_no_unauthenticated_docs_and_deep_json_is_a_400(server):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(server.url + path, timeout=10).status_code == 401  # no key: nothing at all
        assert requests.get(server.url + path, headers={"X-API-Key": KEY}, timeout=10).status_code == 404
    deep = "[" * 500 + "]" * 500
    assert server.post("/score", deep, key=None, raw=True).status_code == 401
    answer = server.post("/score", deep, raw=True)
    assert answer.status_code == 400 and "nested deeper than 16 levels" in answer.json()["detail"], answer.text
    assert "Traceback" not in server.log.read_text()


def test_text_longer_than_any_tokenisation_is_rejected_before_tokenising(server):
    answer = server.post("/get_reward", {"query": ["a" * 15000]})
    assert answer.status_code == 422 and answer.json()["field"] == "query[0]", answer.text
    assert answer.json()["detail"] == "query[0]: 15000 characters: more than 200 tokens for certain (no token of this tokenizer is longer than 1 character)"
    assert server.healthy()


def _serve_main(argv: list[str], monkeypatch) -> dict:
    """rlhf.serve.main up to the point it would start serving; returns what it would serve with."""
    from rlhf.serve import server as serve

    seen: dict = {}

    class FakeServer:
        def run(self, **kwargs):
            seen["run"] = kwargs

    def fake_build(api, *args):
        seen["api"] = api
        return FakeServer()

    monkeypatch.setattr(serve, "build_server", fake_build)
    serve.main(["--model", "unused", "--max-item-tokens", "400", *argv])  # an explicit limit: no settings to read
    return seen


def test_key_rules_at_start(monkeypatch, capsys):
    monkeypatch.delenv("LIT_SERVER_API_KEY", raising=False)
    monkeypatch.setenv("LIT_SERVER_API_KEY", "lit-key")
    assert _serve_main([], monkeypatch)["api"].api_key_env == "LIT_SERVER_API_KEY"  # LitServe's variable is honoured
    monkeypatch.setenv(KEY_ENV, "another")
    with pytest.raises(SystemExit):
        _serve_main(["--api-key-env", KEY_ENV], monkeypatch)
    assert "LIT_SERVER_API_KEY is set and differs from --api-key-env" in capsys.readouterr().err
    monkeypatch.delenv("LIT_SERVER_API_KEY")
    with pytest.raises(SystemExit):
        _serve_main(["--host", "0.0.0.0"], monkeypatch)
    assert "--host 0.0.0.0 serves beyond this machine without an API key" in capsys.readouterr().err
    assert _serve_main(["--host", "0.0.0.0", "--insecure-no-key"], monkeypatch)["api"].api_key_env is None
    run = _serve_main(["--host", "0.0.0.0", "--api-key-env", KEY_ENV, "--max-connections", "7"], monkeypatch)["run"]
    assert run["limit_concurrency"] == 7 and run["timeout_keep_alive"] == 5.0


def test_any_failure_while_decoding_fails_that_request_only():
    """Whatever raises inside decode_request becomes that request's 422 (LitServe would fail the whole batch)."""
    from rlhf.serve.api import RewardAPI
    from rlhf.serve.bodies import RequestError

    class BrokenEncoder:
        max_length = 10

        def ids(self, prompt: str, response: str) -> list[int]:
            raise TypeError("tokenizer exploded")

    api = RewardAPI("unused", max_batch_size=2)
    api.encoder, api.item_limit, api.max_token_chars = BrokenEncoder(), 40, 1
    rejected = api.decode_request({"prompt": "a", "response": "b"})
    assert isinstance(rejected, RequestError) and rejected.status == 422
    assert str(rejected) == "body: could not be processed (TypeError: tokenizer exploded)"


def test_shutdown_is_quiet(server):
    """Last test on the module's server: SIGTERM (what Ctrl+C's graceful path and process managers send) ends the server
    and its HTTP and model workers, with no stack trace and no leaked-semaphore warning from multiprocessing."""
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{server.pid}").exists() and "zombie" not in _state(server.pid):
        time.sleep(0.2)
    time.sleep(1.0)  # multiprocessing's resource tracker reports leaks as the last process exits
    log = server.log.read_text()
    assert "Shutting down LitServe" in log and "Application shutdown complete" in log, log[-3000:]
    assert "Traceback" not in log and "leaked semaphore" not in log and "resource_tracker" not in log, log[-3000:]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (FileNotFoundError, IndexError):
        return "gone"
