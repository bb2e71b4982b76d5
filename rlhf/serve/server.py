"""`python -m rlhf.serve`: serve a reward model over HTTP with LitServe (FastAPI underneath), dynamic batching included.

Endpoints: `POST /score` (`{prompt, response}` or `{messages}` items, one or a list → reward, every head output, μ/σ
for a mean-variance RM, truncated flag), `POST /get_reward` (OpenRLHF's remote-RM shape `{"query": [...]}` →
`{"rewards": [...]}`; queries are text the client already rendered), `GET /health`, `GET /info`, and `GET /`, the
browser playground (`rlhf.serve.page`).
How it maps onto LitServe 0.2.19: `RewardAPI` (`rlhf.serve.api`) is the one LitAPI, at `/score`. `/get_reward` is a
route added to the server's FastAPI app that hands its body to LitServe's own request handler, so both endpoints
share one model copy and one batching queue (two LitAPIs would load the model twice). `rlhf.serve.guard` checks
the key from the headers (401) before any body is read, then size (413), time (408) and JSON (400), and bounds
connections. Binds 127.0.0.1 unless told otherwise (another host needs a key or `--insecure-no-key`);
`--api-key-env NAME` (or LitServe's LIT_SERVER_API_KEY) makes every endpoint but `/` require `X-API-Key`. No
/docs, /redoc, /openapi.json. Left out: TLS, rate limiting, streaming, reward normalisation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
from dataclasses import dataclass
from typing import Any, Sequence

import litserve as ls
from fastapi import Depends, Request
from litserve.server import RegularRequestHandler

from rlhf.errors import ArgumentParser
from rlhf.serve.api import RewardAPI, ServeLimits
from rlhf.serve.bodies import OpenRLHFBody
from rlhf.serve.guard import GuardedHttpProtocol, RequestGuard
from rlhf.serve.page import add_playground

LOOPBACK = ("127.0.0.1", "::1", "localhost")
LITSERVE_KEY_ENV = "LIT_SERVER_API_KEY"  # LitServe's own key variable; its check is replaced by ours, so honour it here


@dataclass(frozen=True)
class Timeouts:
    """Connection bounds (uvicorn settings plus `rlhf.serve.guard`'s deadlines), in seconds / connections."""

    header: float = 10.0
    body: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = 64


def build_server(api: RewardAPI, accelerator: str = "auto", devices: int | str = "auto", timeout: float = 60.0,
                 timeouts: Timeouts = Timeouts()) -> ls.LitServer:
    """A LitServer with `/score` (the LitAPI), `/get_reward` (same queue), `/health`, and the request guard.

    No `/docs`, `/redoc` or `/openapi.json` (unauthenticated pages, and `/docs` loads script from a CDN)."""
    metadata = {"model": api.model_path, "limits": vars(api.limits), "max_batch_size": api.max_batch_size}
    key = os.environ.get(api.api_key_env) if api.api_key_env else None
    guard = {"max_bytes": api.limits.max_body_bytes, "api_key": key, "body_timeout": timeouts.body}
    server = ls.LitServer(api, accelerator=accelerator, devices=devices, timeout=timeout, model_metadata=metadata,
                          middlewares=[(RequestGuard, guard)], disable_openapi_url=True)
    handler = RegularRequestHandler(api, server)

    async def get_reward(request: Request) -> Any:
        return await handler.handle_request(OpenRLHFBody(await request.json()), OpenRLHFBody)

    server.app.add_api_route("/get_reward", get_reward, methods=["POST"], dependencies=[Depends(server.setup_auth(api))])
    add_playground(server.app)  # GET /: the browser playground (rlhf.serve.page)
    return server


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf.serve", description="Serve a reward model over HTTP (/score, /get_reward, /health).")
    p.add_argument("--model", required=True, help="RM checkpoint directory, adapter export or Hugging Face export")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "0.0.0.0", "::"], help="address to bind (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=16, help="requests merged into one dynamic batch (1: no batching, faster on CPU; see docs/benchmarks.md)")
    p.add_argument("--batch-timeout", type=float, default=0.01, help="seconds to wait for a batch to fill")
    p.add_argument("--forward-batch-size", type=int, default=32, help="sequences per forward pass")
    p.add_argument("--max-body-bytes", type=int, default=ServeLimits.max_body_bytes)
    p.add_argument("--max-items", type=int, default=ServeLimits.max_items, help="items per request")
    p.add_argument("--max-item-tokens", type=int, default=None, help="tokens per item in the RM's template; longer than the RM's max_length is cut (default: 4 x max_length)")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key clients send as X-API-Key "
                   "(default: LIT_SERVER_API_KEY if that is set)")
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--devices", default="auto", help="number of devices (one model copy each) or 'auto'")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may wait in the queue before a 504")
    p.add_argument("--insecure-no-key", action="store_true", help="allow a non-loopback --host without an API key")
    p.add_argument("--header-timeout", type=float, default=Timeouts.header, help="seconds for a request's headers to arrive (then 408, closed)")
    p.add_argument("--body-timeout", type=float, default=Timeouts.body, help="seconds for a request's body to arrive (then 408)")
    p.add_argument("--keep-alive-timeout", type=float, default=Timeouts.keep_alive, help="seconds an idle keep-alive connection stays open")
    p.add_argument("--max-connections", type=int, default=Timeouts.max_connections, help="concurrent connections and requests; beyond it 503")
    return p


_MAIN_PID = os.getpid()


def _interrupt(signum: int, frame: Any) -> None:
    if os.getpid() != _MAIN_PID:  # a forked HTTP worker LitServe is stopping: just end
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt


def resolve_limits(model: str, limits: ServeLimits) -> ServeLimits:
    """The item-token limit made explicit (default 4 × the RM's max_length) before the server starts, so the start-up
    log and `/info` give the same number; a model without its settings fails here, before any worker starts."""
    from rlhf.eval.score_pairs import read_eval_settings

    if limits.max_item_tokens is not None:
        return limits
    return dataclasses.replace(limits, max_item_tokens=4 * read_eval_settings(model).max_length)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    args.api_key_env = _key_env(parser, args)
    timeouts = Timeouts(args.header_timeout, args.body_timeout, args.keep_alive_timeout, args.max_connections)
    limits = resolve_limits(args.model, ServeLimits(args.max_body_bytes, args.max_items, args.max_item_tokens))
    api = RewardAPI(args.model, limits, args.forward_batch_size, args.api_key_env, args.max_batch_size, args.batch_timeout)
    devices = args.devices if args.devices == "auto" else int(args.devices)
    signal.signal(signal.SIGTERM, _interrupt)  # LitServe shuts its workers down on Ctrl+C only; treat SIGTERM alike
    GuardedHttpProtocol.header_timeout = timeouts.header
    build_server(api, args.accelerator, devices, args.timeout, timeouts).run(
        host=args.host, port=args.port, generate_client_file=False, http=GuardedHttpProtocol,
        limit_concurrency=timeouts.max_connections, timeout_keep_alive=timeouts.keep_alive)


def _key_env(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The environment variable holding the API key: --api-key-env, else LitServe's LIT_SERVER_API_KEY if set.

    Refuses to start when the named variable is empty, when both are set and differ, and when a non-loopback
    --host would serve without a key (unless --insecure-no-key)."""
    env = args.api_key_env
    if env and not os.environ.get(env):
        parser.error(f"--api-key-env {env}: that environment variable is not set (refusing to serve without the key)")
    litserve_key = os.environ.get(LITSERVE_KEY_ENV)
    if litserve_key and env and env != LITSERVE_KEY_ENV and os.environ[env] != litserve_key:
        parser.error(f"{LITSERVE_KEY_ENV} is set and differs from --api-key-env {env}: unset one (refusing to guess which key clients use)")
    env = env or (LITSERVE_KEY_ENV if litserve_key else None)
    if env is None and args.host not in LOOPBACK and not args.insecure_no_key:
        parser.error(f"--host {args.host} serves beyond this machine without an API key: give --api-key-env NAME "
                     "(or set LIT_SERVER_API_KEY), or --insecure-no-key to serve without one")
    return env

