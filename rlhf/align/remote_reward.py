"""`RemoteReward`: a reward source that asks a reward-model server (`python -m rlhf.serve`) over HTTP.

align.py picks its reward by class path, so `model.reward: {class_path: rlhf.align.remote_reward.RemoteReward, init_args:
{url: ...}}` scores rollouts on another machine or GPU, in the RM's own template (the server renders it), with the
same rewards as a local `rlhf.align.rewards.RewardModelScore` of the same model. Connection errors, timeouts and 5xx
answers are retried with exponential back-off; when the tries run out, or the server rejects a request (4xx), the
error names the server, the endpoint and the server's message. `build()` checks `/health` first, so a server that is
down stops the run before any generation. Left out: load balancing over several servers, async requests.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import requests
import torch
from torch import Tensor

from rlhf.align.rewards import RewardSource


class RemoteRewardError(RuntimeError):
    """The reward server could not be reached, or it refused a request."""


class RemoteReward(RewardSource):
    """Rewards from `POST {url}/score` of a reward-model server.

    Args:
        url: the server's base address, e.g. "http://127.0.0.1:8000".
        timeout: seconds to wait for each HTTP answer.
        retries: further tries after a connection error, a timeout or a 5xx answer (a 4xx is never retried).
        api_key_env: environment variable holding the key to send as `X-API-Key`; None, or the variable unset, sends none.
        batch_size: items per request; keep it at most the server's `--max-items`.
        backoff: seconds before the first retry, doubling after each.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 60.0, retries: int = 3, api_key_env: str | None = "RLHF_RM_API_KEY", batch_size: int = 32, backoff: float = 0.5):
        super().__init__()
        if batch_size < 1 or retries < 0 or timeout <= 0:
            raise ValueError(f"RemoteReward: need batch_size ≥ 1, retries ≥ 0, timeout > 0; got {batch_size}, {retries}, {timeout}")
        self.url, self.timeout, self.retries, self.api_key_env = url.rstrip("/"), timeout, retries, api_key_env
        self.batch_size, self.backoff = batch_size, backoff
        self.session: requests.Session | None = None
        self.truncated = 0  # items the server cut with the "truncate" rule so far

    def build(self) -> None:
        if self.session is not None:
            return
        self.session = requests.Session()
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            self.session.headers["X-API-Key"] = key
        self._call("GET", "/health")

    def _call(self, method: str, path: str, payload: Any = None) -> requests.Response:
        """One request with retries; raises RemoteRewardError with the server's message or the last failure."""
        assert self.session is not None, "RemoteReward: call build() first"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.session.request(method, self.url + path, json=payload, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code < 400:
                return response
            detail = _detail(response)
            if response.status_code < 500:
                raise RemoteRewardError(f"reward server {self.url}{path} refused the request ({response.status_code}): {detail}")
            last = f"HTTP {response.status_code}: {detail}"
        raise RemoteRewardError(
            f"reward server {self.url}{path} did not answer after {self.retries + 1} tries ({self.timeout:g} s timeout each); "
            f"last error: {last}. Is `python -m rlhf.serve --model ... --port ...` running there?")

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        items = [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]
        rewards: list[float] = []
        for start in range(0, len(items), self.batch_size):
            results = self._call("POST", "/score", items[start : start + self.batch_size]).json()["results"]
            rewards += [r["reward"] for r in results]
            self.truncated += sum(bool(r.get("truncated")) for r in results)
        return torch.tensor(rewards, dtype=torch.float32)


def _detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:500]
