"""What the reward server checks before LitServe sees a request: key, size, time, JSON shape, in that order.

`RequestGuard` (ASGI middleware) answers, from the headers alone and before reading any body: 401 without the API
key (every path but `public_paths`, e.g. a static page at `/` whose script sends the key itself), 413 for a declared
body over the limit. Then, while reading the body: 413 once it grows past the limit, 408 when it does not arrive
within `body_timeout` s. Then 400 for bytes that are not JSON or JSON nested deeper than `MAX_JSON_DEPTH`. So an
unauthenticated client never makes the server buffer a byte. `GuardedHttpProtocol` (uvicorn's httptools protocol)
answers 408 and closes a connection whose request headers are not complete `header_timeout` s after it opened
(idle sockets, trickled headers). Left out: per-client rate limits and TLS (a proxy's job).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any, Sequence

from fastapi.responses import JSONResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rlhf.serve.bodies import RequestError

MAX_JSON_DEPTH = 16  # the deepest valid body is 4 levels (list → item → messages → turn)


def json_depth(value: Any) -> int:
    """Nesting depth of decoded JSON (a scalar is 0), computed without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (list, dict)):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return depth


def parse_body(body: bytes) -> Any:
    """The JSON body, or a 400 `RequestError` for bytes that are not JSON or nest deeper than `MAX_JSON_DEPTH`."""
    try:
        value = json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(400, "body", f"not valid JSON ({e})") from None
    except RecursionError:
        raise RequestError(400, "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise RequestError(400, "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


class RequestGuard:
    """ASGI middleware: API key, body size, body time and JSON checks (see the module docstring).

    The checked body is replayed to the app unchanged, declared as `application/json`.
    """

    def __init__(self, app: Any, max_bytes: int, api_key: str | None, body_timeout: float = 10.0,
                 body_paths: Sequence[str] = ("/score", "/get_reward"), public_paths: Sequence[str] = ("/",)):
        self.app, self.max_bytes, self.api_key, self.body_timeout = app, max_bytes, api_key, body_timeout
        self.body_paths, self.public_paths = tuple(body_paths), tuple(public_paths)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key and scope["path"] not in self.public_paths:
            if not hmac.compare_digest(headers.get(b"x-api-key", b""), self.api_key.encode()):
                return await _reply(RequestError(401, "X-API-Key", "missing or wrong API key"), scope, receive, send)
        if scope["method"] != "POST" or scope["path"] not in self.body_paths:
            return await self.app(scope, receive, send)
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _reply(RequestError(413, "body", f"{int(declared)} bytes; this server takes at most {self.max_bytes}"), scope, receive, send)
        try:
            body = await asyncio.wait_for(self._read(receive), self.body_timeout)
            if body is None:  # the client went away
                return
            parse_body(body)
        except asyncio.TimeoutError:
            return await _reply(RequestError(408, "body", f"not received within {self.body_timeout:g} s"), scope, receive, send)
        except RequestError as e:
            return await _reply(e, scope, receive, send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        # the body is JSON whatever Content-Type says (curl -d sends a form type, which LitServe would parse as a form)
        headers_out = [(k, v) for k, v in scope["headers"] if k != b"content-type"] + [(b"content-type", b"application/json")]
        await self.app({**scope, "headers": headers_out}, replay, send)

    async def _read(self, receive: Any) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                raise RequestError(413, "body", f"more than {self.max_bytes} bytes; this server takes at most {self.max_bytes}")
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _reply(error: RequestError, scope: dict, receive: Any, send: Any) -> None:
    extra = {"connection": "close"} if error.status in (401, 408, 413) else None  # the rest of the body is not read
    await JSONResponse(status_code=error.status, content=error.body(), headers=extra)(scope, receive, send)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for request headers: 408 and close when it passes.

    The clock starts when the connection opens and again when the first byte of each later request arrives (idle
    keep-alive connections are closed by uvicorn's `timeout_keep_alive`)."""

    header_timeout = 10.0  # set by rlhf.serve from --header-timeout before the server starts

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        body = json.dumps(RequestError(408, "headers", f"request headers not received within {self.header_timeout:g} s").body()).encode()
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()
