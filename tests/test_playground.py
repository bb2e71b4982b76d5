"""The browser playground at `/` of `python -m rlhf.serve`, in a real headless chromium (Debian's, via chromedriver).

The page is opened, filled (a prompt, three responses, one of them empty), scored with a click, and its DOM read:
every reward and head output shown must equal what `/score` answers for the same items. Run for a 5-attribute RM
behind an API key (a click without the key shows the server's 401; with the key typed in the scores appear) and for
a mean-variance RM (μ ± σ). Skips, saying why, where chromium or chromedriver is not installed (`make browser`).
`RLHF_PLAYGROUND_SCREENSHOT=docs/playground.png` also saves the 5-attribute page's screenshot there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from rlhf.models.heads import HeadSpec
from tests import webdriver
from tests.test_serve import KEY, KEY_ENV, REPO, Server, _free_port, _save_rm

PROMPT = "Tell me about the cat."
RESPONSES = ["The cat is soft and purrs.", "", "cat cat cat"]  # an empty reply is scored like any other

pytestmark = pytest.mark.skipif(webdriver.available() is not None, reason=webdriver.available() or "")


@contextlib.contextmanager
def _serve(checkpoint: Path, log: Path, key: bool):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", KEY_ENV: KEY}
    command = [sys.executable, "-m", "rlhf.serve", "--model", str(checkpoint), "--port", str(port), "--accelerator", "cpu",
               "--max-batch-size", "1", *(["--api-key-env", KEY_ENV] if key else [])]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"server exited:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/health", headers={"X-API-Key": KEY}, timeout=10).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"server not healthy in time:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield Server(f"http://127.0.0.1:{port}", log, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _fill_and_score(browser: webdriver.Browser, url: str) -> None:
    browser.open(url)
    browser.wait_for("return document.querySelectorAll('textarea.response').length == 2")
    browser.click("#add")
    browser.type("#prompt", PROMPT)
    for i, text in enumerate(RESPONSES):
        if text:
            browser.type(f"#response-{i}", text)
    browser.click("#score")


def _dom_results(browser: webdriver.Browser) -> list[dict]:
    return browser.script("""return Array.from(document.querySelectorAll('.result'), box => ({
        reward: Number(box.querySelector('.reward').dataset.reward),
        mu_sigma: box.querySelector('.mu-sigma') ? [Number(box.querySelector('.mu-sigma').dataset.mu), Number(box.querySelector('.mu-sigma').dataset.sigma)] : null,
        outputs: Object.fromEntries(Array.from(box.querySelectorAll('.value'), v => [v.dataset.attribute, Number(v.dataset.value)])),
        names: Array.from(box.querySelectorAll('.value'), v => v.dataset.attribute),
        bars: box.querySelectorAll('.fill').length}))""")


@pytest.mark.parametrize("head", ["5-attribute", "mean-variance"])
def test_playground_scores_equal_the_score_endpoint(head: str, tiny_llama_dir: Path, tmp_path: Path) -> None:
    spec = HeadSpec(n_out=5) if head == "5-attribute" else HeadSpec(kind="mean_var")
    checkpoint = _save_rm(tiny_llama_dir, tmp_path / "rm", spec, seed=5)
    key = head == "5-attribute"
    with _serve(checkpoint, tmp_path / "server.log", key) as server, webdriver.Browser() as browser:
        page = requests.get(server.url + "/", timeout=30)  # the page itself needs no key
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script src" not in page.text and "http" not in page.text.split("<script>")[1]  # inline, no CDN
        _fill_and_score(browser, server.url + "/")
        if key:  # no key typed in: the server's 401 is shown, no scores
            assert browser.wait_for("return document.body.dataset.state == 'error' && document.getElementById('error').textContent")[:3] == "401"
            browser.type("#api-key", KEY)
            browser.click("#score")
        browser.wait_for("return document.body.dataset.state == 'done'")
        shown = _dom_results(browser)
        expected = server.post("/score", [{"prompt": PROMPT, "response": r} for r in RESPONSES], key=KEY).json()["results"]
        assert [s["reward"] for s in shown] == [e["reward"] for e in expected]
        assert [s["outputs"] for s in shown] == [e["outputs"] for e in expected]
        assert all(s["bars"] == len(e["outputs"]) for s, e in zip(shown, expected))  # every head output is a bar
        if head == "mean-variance":
            assert [s["mu_sigma"] for s in shown] == [[e["mu"], e["sigma"]] for e in expected]
        else:
            assert shown[0]["names"] == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]  # the head's order
            assert all(s["mu_sigma"] is None for s in shown)
        png = browser.screenshot()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        if key and os.environ.get("RLHF_PLAYGROUND_SCREENSHOT"):
            Path(os.environ["RLHF_PLAYGROUND_SCREENSHOT"]).write_bytes(png)
