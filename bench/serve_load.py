"""Load test of the reward-model server (`python -m rlhf.serve`), batched against unbatched. Not part of `make test`.

For each `--max-batch-size` it starts the server on a free loopback port, waits for `/health`, then runs
`--clients` threads that each POST `/score` requests of `--items` items back to back for `--seconds` seconds, and
reports requests/s, items/s, p50/p99 latency, the error count (every non-200 answer or failed connection) and the
mean number of requests per dynamic batch (from the server's log). Items are distinct across requests (the server
scores duplicates once): short hh-rlhf prompts (data/hh-rlhf, under 150 characters, never truncated) with short
responses. Without `--model` it builds an RM with a random head (its values do not change the speed) on the shipped
tiny Llama (`--backbone tiny-llama`, 0.94M parameters) or on the tests' random hidden-32 Llama (`random-tiny`).
The clients run on the same machine as the server. With `--faults`, each run is done twice, clean and with one
extra client per kind of bad request mixed in (unencodable text on both endpoints, deep JSON, a 900 kB query,
keyless stalled 990 kB bodies, idle sockets, trickled headers); it reports the good clients' errors, p99 latency
and the server's memory (RSS of its processes) before and after each run.

    .venv/bin/python bench/serve_load.py --out runs/bench/serve_load.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rlhf.files import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESPONSES = ["Sure, here is what I know.", "I cannot help with that.", "Once upon a time there was a little girl named Lily.", "No."]


def tiny_rm(out: Path, backbone_kind: str) -> Path:
    """An RM checkpoint (LoRA r=8, random head, steerlm template with an empty system) on the shipped tiny Llama
    ("tiny-llama", 0.94M parameters) or on a random 2-layer Llama of hidden size 32 ("random-tiny", the tests' model,
    so small that per-call overhead, not arithmetic, dominates a forward pass)."""
    import torch
    import yaml

    from rlhf.models.backbone import BackboneSpec, LoraSpec
    from rlhf.models.heads import HeadSpec
    from rlhf.models.llama2c import convert_llama2c
    from rlhf.models.reward_model import build_reward_model
    from rlhf.training.checkpoint import save_trained, trained_state_dict

    llama = convert_llama2c(REPO / "data/tiny-llama/model.bin", REPO / "data/tiny-llama/tokenizer.model", out / "tiny-llama-hf")
    torch.manual_seed(0)
    if backbone_kind == "random-tiny":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(vocab_size=105, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
        LlamaForCausalLM(config).save_pretrained(llama)  # keeps the converted tokenizer files beside it
    backbone, head = BackboneSpec(str(llama), attn_implementation="sdpa", lora=LoraSpec(r=8, alpha=16)), HeadSpec()
    config = yaml.safe_dump({"data": {"init_args": {"template": {"name": "steerlm", "system": ""}, "max_length": 256}}})
    meta = {"backbone": dataclasses.asdict(backbone), "head": dataclasses.asdict(head)}
    save_trained(out / "rm", trained_state_dict(build_reward_model(backbone, head)), meta, config)
    return out / "rm"


def item_pool() -> list[dict[str, str]]:
    """Every (short hh-rlhf prompt, response) combination: thousands of distinct items."""
    rows = [json.loads(line) for line in (REPO / "data/hh-rlhf/harmless-test-prompts.jsonl").read_text().splitlines()]
    prompts = [r["prompt"] for r in rows if len(r["prompt"]) < 150]
    return [{"prompt": p, "response": r} for r in RESPONSES for p in prompts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY_ENV, KEY = "RLHF_BENCH_KEY", "bench-key"
HEADERS = {"X-API-Key": KEY}


def start_server(model: Path, batch: int, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "rlhf.serve", "--model", str(model), "--port", str(port), "--accelerator", args.accelerator,
               "--max-batch-size", str(batch), "--batch-timeout", str(args.batch_timeout), "--forward-batch-size", str(args.forward_batch_size),
               "--max-items", str(max(*args.items, 64)), "--api-key-env", KEY_ENV, "--max-connections", "256"]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, KEY_ENV: KEY})
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/health", headers=HEADERS, timeout=5).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"server not healthy after 300 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_rss(proc: subprocess.Popen) -> int:
    import psutil

    tree = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])


def _raw(url: str, data: bytes, stall: float) -> None:
    """Open a connection, send `data`, then stall (read nothing more, send nothing) until `stall` s pass or it closes."""
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=stall) as sock:
            sock.sendall(data)
            while sock.recv(65536):
                pass
    except OSError:
        pass


def _trickle(url: str, stall: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=stall) as sock:
            for byte in b"POST /score HTTP/1.1\r\nHost: x\r\n" * 10:
                sock.sendall(bytes([byte]))
                time.sleep(1.0)
    except OSError:
        pass


FAULTS = {  # kind: one bad request (returns when the server answered or closed the connection)
    "surrogate-get_reward": lambda url: requests.post(url + "/get_reward", data='{"query": ["hi \\ud800"]}', headers=HEADERS, timeout=30),
    "surrogate-score": lambda url: requests.post(url + "/score", data='{"prompt": "hi \\ud800", "response": "x"}', headers=HEADERS, timeout=30),
    "deep-json": lambda url: requests.post(url + "/score", data="[" * 500 + "]" * 500, headers=HEADERS, timeout=30),
    "900kB-query": lambda url: requests.post(url + "/get_reward", json={"query": ["word " * 180_000]}, headers=HEADERS, timeout=30),
    "keyless-stalled-body": lambda url: _raw(url, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 990_000, 30),
    "idle-socket": lambda url: _raw(url, b"", 30),
    "trickled-headers": lambda url: _trickle(url, 30),
}


def drive_faults(url: str, stop_at: float, counts: dict[str, int], rate: float) -> list[threading.Thread]:
    """One thread per fault kind, each starting a bad request every 1/`rate` s (or when the last one ends) until `stop_at`."""
    def loop(kind: str) -> None:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                FAULTS[kind](url)
            except requests.RequestException:
                pass
            counts[kind] += 1
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))

    threads = [threading.Thread(target=loop, args=(kind,), daemon=True) for kind in FAULTS]
    for t in threads:
        t.start()
    return threads


def drive(url: str, clients: int, seconds: float, n_items: int, faults: dict[str, int] | None = None, fault_rate: float = 5.0) -> dict[str, float]:
    """`clients` threads POST /score back to back until `seconds` pass; latencies of the 200 answers, errors counted."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    pool = item_pool()

    def client(index: int) -> None:
        # every request carries items no other request of the run has (the server scores duplicates once)
        session, position = requests.Session(), index * n_items
        while time.monotonic() < stop_at:
            body = [pool[(position + j) % len(pool)] for j in range(n_items)]
            position += clients * n_items
            start = time.perf_counter()
            try:
                ok = session.post(url + "/score", json=body, headers=HEADERS, timeout=120).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[0] += 1

    started = time.monotonic()
    fault_threads = drive_faults(url, stop_at, faults, fault_rate) if faults is not None else []
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    for t in fault_threads:
        t.join(timeout=35)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"requests": len(latencies), "errors": errors[0], "seconds": round(elapsed, 2),
            "requests_per_s": round(len(latencies) / elapsed, 2), "items_per_s": round(len(latencies) * n_items / elapsed, 1),
            "p50_ms": round(1000 * q[49], 1), "p99_ms": round(1000 * q[98], 1)}


def batch_sizes(log: Path) -> list[int]:
    """Requests in each dynamic batch so far, from the server's per-batch log lines."""
    return [int(n) for n in re.findall(r"batch \d+: (\d+) requests", log.read_text())]


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="RM checkpoint or export (default: a tiny RM built by this script)")
    p.add_argument("--backbone", default="tiny-llama", choices=["tiny-llama", "random-tiny"], help="backbone of the built RM")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="--max-batch-size values to compare")
    p.add_argument("--items", type=int, nargs="+", default=[1, 8], help="items per request, one run each")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--batch-timeout", type=float, default=0.01)
    p.add_argument("--forward-batch-size", type=int, default=64)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--out", default="runs/bench/serve_load.json")
    p.add_argument("--faults", action="store_true", help="also run each row with bad requests of every kind mixed in")
    p.add_argument("--fault-rate", type=float, default=5.0, help="bad requests per second per kind (with --faults)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    model = Path(args.model) if args.model else tiny_rm(work, args.backbone)
    rows = []
    for batch in args.batch_sizes:
        log = work / f"server-batch{batch}.log"
        proc, url = start_server(model, batch, args, log)
        try:
            drive(url, args.clients, 2.0, args.items[0])  # warm-up, not reported
            for n in args.items:
                for faults in ([None, {k: 0 for k in FAULTS}] if args.faults else [None]):
                    seen, rss_before = len(batch_sizes(log)), server_rss(proc)
                    row = {"max_batch_size": batch, "items_per_request": n, "clients": args.clients, "faults": faults is not None,
                           **drive(url, args.clients, args.seconds, n, faults, args.fault_rate)}
                    time.sleep(0.5)  # let the last log lines land
                    sizes = batch_sizes(log)[seen:]
                    row["mean_requests_per_batch"] = round(sum(sizes) / max(len(sizes), 1), 2)
                    row.update(rss_before_mb=round(rss_before / 1e6, 1), rss_after_mb=round(server_rss(proc) / 1e6, 1), bad_requests=faults)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            stop(proc)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    write_json(args.out, {"machine": machine, "model": args.model or args.backbone, "runs": rows})
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
