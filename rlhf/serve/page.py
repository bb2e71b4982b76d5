"""The reward-model playground: `GET /` of `python -m rlhf.serve` returns one static HTML page (rlhf/serve/static).

The page (`playground.html`: no build step, no CDN, works offline) takes a prompt and two or more responses, POSTs
them to `/score` (sending `X-API-Key` when the user types one in) and shows each reward, every head output as a bar
and μ ± σ for a mean-variance RM. The page itself needs no key: it holds no data, and every score it asks for goes
through `/score`'s own checks. This replaces LitServe's plain-text `GET /` ("litserve running"). Left out: pairs
and history, streaming, any other asset (the page inlines its CSS and JS).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

PAGE = "playground.html"


def playground_html() -> str:
    """The page's text, from the installed package's data (rlhf/serve/static/playground.html)."""
    return (Path(__file__).parent / "static" / PAGE).read_text(encoding="utf-8")


def add_playground(app: FastAPI) -> None:
    """Serve the playground at `GET /` of `app`, in place of any `GET /` route already there."""
    app.router.routes[:] = [r for r in app.router.routes if not (getattr(r, "path", None) == "/" and "GET" in getattr(r, "methods", ()))]
    html = playground_html()

    async def playground() -> HTMLResponse:
        return HTMLResponse(html)

    app.add_api_route("/", playground, methods=["GET"], include_in_schema=False)
