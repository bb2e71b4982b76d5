"""`python -m rlhf.serve`: serve a reward model over HTTP with LitServe (FastAPI underneath), dynamic batching included.

Endpoints: `POST /score` (`{prompt, response}` or `{messages}` items, one or a list → reward, every head output, μ/σ
for a mean-variance RM, truncated flag), `POST /get_reward` (OpenRLHF's remote-RM shape `{"query": [...]}` →
`{"rewards": [...]}`; queries are text the client already rendered), `GET /health`, `GET /info`.
How it maps onto LitServe 0.2.19: `RewardAPI` (`rlhf.serve_api`) is the one LitAPI, at `/score`. `/get_reward` is a
route added to the server's FastAPI app that hands its body to LitServe's own request handler, so both endpoints
share one model copy and one batching queue (two LitAPIs would load the model twice). `BodyGuard`, an ASGI
middleware, answers over-size bodies (413) and malformed JSON (400) before LitServe, which would answer 500. Binds
127.0.0.1 unless told otherwise; `--api-key-env NAME` makes both endpoints require `X-API-Key: $NAME`. Left out:
TLS, rate limiting, streaming, reward normalisation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
from typing import Any, Sequence

import litserve as ls
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from litserve.server import RegularRequestHandler

from rlhf.errors import ArgumentParser, run_main
from rlhf.serve_api import RewardAPI, ServeLimits
from rlhf.serve_requests import OpenRLHFBody, RequestError

BODY_PATHS = ("/score", "/get_reward")


class BodyGuard:
    """ASGI middleware: a POST body on `paths` must be at most `max_bytes` (else 413) and valid JSON (else 400).

    The body is read once here and replayed to the app unchanged, declared as `application/json`.
    """

    def __init__(self, app: Any, max_bytes: int, paths: Sequence[str] = BODY_PATHS):
        self.app, self.max_bytes, self.paths = app, max_bytes, tuple(paths)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(RequestError(413, "body", f"{int(declared)} bytes; this server takes at most {self.max_bytes}"), scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(RequestError(413, "body", f"more than {self.max_bytes} bytes; this server takes at most {self.max_bytes}"), scope, receive, send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            json.loads(body)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return await self._reject(RequestError(400, "body", f"not valid JSON ({e})"), scope, receive, send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        # the body is JSON whatever Content-Type says (curl -d sends a form type, which LitServe would parse as a form)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"] + [(b"content-type", b"application/json")]
        await self.app({**scope, "headers": headers}, replay, send)

    @staticmethod
    async def _reject(error: RequestError, scope: dict, receive: Any, send: Any) -> None:
        await JSONResponse(status_code=error.status, content=error.body())(scope, receive, send)


def build_server(api: RewardAPI, accelerator: str = "auto", devices: int | str = "auto", timeout: float = 60.0) -> ls.LitServer:
    """A LitServer with `/score` (the LitAPI), `/get_reward` (same queue), `/health`, and the body guard."""
    metadata = {"model": api.model_path, "limits": vars(api.limits), "max_batch_size": api.max_batch_size}
    server = ls.LitServer(api, accelerator=accelerator, devices=devices, timeout=timeout, model_metadata=metadata,
                          middlewares=[(BodyGuard, {"max_bytes": api.limits.max_body_bytes})])
    handler = RegularRequestHandler(api, server)

    async def get_reward(request: Request) -> Any:
        return await handler.handle_request(OpenRLHFBody(await request.json()), OpenRLHFBody)

    server.app.add_api_route("/get_reward", get_reward, methods=["POST"], dependencies=[Depends(server.setup_auth(api))])
    return server


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf.serve", description="Serve a reward model over HTTP (/score, /get_reward, /health).")
    p.add_argument("--model", required=True, help="RM checkpoint directory, adapter export or Hugging Face export")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "0.0.0.0", "::"], help="address to bind (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=16, help="requests merged into one dynamic batch (1: no batching, faster on CPU; see docs/benchmarks.md)")
    p.add_argument("--batch-timeout", type=float, default=0.01, help="seconds to wait for a batch to fill")
    p.add_argument("--forward-batch-size", type=int, default=32, help="sequences per forward pass")
    p.add_argument("--max-body-bytes", type=int, default=ServeLimits.max_body_bytes)
    p.add_argument("--max-items", type=int, default=ServeLimits.max_items, help="items per request")
    p.add_argument("--max-item-tokens", type=int, default=None, help="tokens per item in the RM's template; longer than the RM's max_length is cut (default: 4 x max_length)")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key clients send as X-API-Key")
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--devices", default="auto", help="number of devices (one model copy each) or 'auto'")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may wait in the queue before a 504")
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
    if args.api_key_env and not os.environ.get(args.api_key_env):
        parser.error(f"--api-key-env {args.api_key_env}: that environment variable is not set (refusing to serve without the key)")
    limits = resolve_limits(args.model, ServeLimits(args.max_body_bytes, args.max_items, args.max_item_tokens))
    api = RewardAPI(args.model, limits, args.forward_batch_size, args.api_key_env, args.max_batch_size, args.batch_timeout)
    devices = args.devices if args.devices == "auto" else int(args.devices)
    signal.signal(signal.SIGTERM, _interrupt)  # LitServe shuts its workers down on Ctrl+C only; treat SIGTERM alike
    build_server(api, args.accelerator, devices, args.timeout).run(host=args.host, port=args.port, generate_client_file=False)


if __name__ == "__main__":
    run_main(main)
