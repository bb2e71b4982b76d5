"""A minimal W3C WebDriver client over `requests` for the playground test: Debian's chromium + chromedriver, offline.

Starts `chromedriver` on a free loopback port and one headless chromium session with the flags that keep it
from reaching the network (no first-run, background networking, component updates, sync or QUIC) and a fresh
profile directory. `available()` says why a browser test must skip (no chromium or no chromedriver on PATH).
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import requests

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1100,1000"]


def available() -> str | None:
    """None if chromium and chromedriver are installed, else the reason to skip (with the fix)."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    return None if not missing else f"{' and '.join(missing)} not on PATH (install with `make browser`: Debian chromium + chromium-driver)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless chromium session driven through chromedriver; use as a context manager."""

    def __enter__(self) -> "Browser":
        self.profile = tempfile.TemporaryDirectory(prefix="rlhf-chromium-")
        port = _free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/status", timeout=5).json()["value"]["ready"]:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromedriver did not start in 30 s")
            time.sleep(0.2)
        options = {"binary": shutil.which("chromium"), "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}"]}
        reply = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}, session=False)
        self.session = reply["sessionId"]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call("DELETE", "", None)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)
            self.profile.cleanup()

    def _call(self, method: str, path: str, body: Any, session: bool = True) -> Any:
        prefix = f"/session/{self.session}" if session else ""
        reply = requests.request(method, f"{self.url}{prefix}{path}", json=body, timeout=120).json()
        value = reply.get("value", reply)
        if isinstance(value, dict) and "error" in value:
            raise RuntimeError(f"WebDriver {method} {path}: {value['error']}: {value.get('message', '')[:500]}")
        return value if session else {**value, "sessionId": value.get("sessionId", reply.get("sessionId"))}

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/click", {})

    def script(self, source: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, source: str, timeout: float = 60) -> Any:
        """Poll the script `source` until it returns a truthy value; returns it."""
        deadline = time.monotonic() + timeout
        while not (value := self.script(source)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"browser: {source!r} still false after {timeout} s")
            time.sleep(0.2)
        return value

    def screenshot(self) -> bytes:
        return base64.b64decode(self._call("GET", "/screenshot", None))
