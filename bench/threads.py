"""Intra-op threads on the real SmolLM2-135M-Instruct: a forward pass and greedy decoding at 1 and 2 threads.

Same model, same input, same outputs (greedy tokens are compared); only `torch.set_num_threads` differs. On a
2-core machine shared with other jobs, two threads contend for the cores and run several times slower than one;
on an idle machine two are faster. Not a test. Example: python bench/threads.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import save_random_llama  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=10)
    args = p.parse_args(argv)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = save_random_llama("smollm2", Path("unused"))
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    report: dict = {"load_average_before": os.getloadavg(), "cpus": os.cpu_count(), "prompt_tokens": int(inputs["input_ids"].shape[1])}
    tokens = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fwd, gen = [], []
        with torch.no_grad():
            for _ in range(args.repeats):
                t = time.perf_counter()
                model(**inputs)
                fwd.append(time.perf_counter() - t)
                t = time.perf_counter()
                out = model.generate(**inputs, max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
                gen.append(time.perf_counter() - t)
        tokens[threads] = out[0].tolist()
        report[f"{threads}_threads"] = {"forward_s": sorted(fwd)[len(fwd) // 2], "generate_s": sorted(gen)[len(gen) // 2]}
    report["same_tokens"] = tokens[1] == tokens[2]
    report["ratio_2_over_1"] = {k: report["2_threads"][k] / report["1_threads"][k] for k in ("forward_s", "generate_s")}
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
