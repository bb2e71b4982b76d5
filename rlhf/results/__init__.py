"""Published result runs: `python -m rlhf.results.smollm2` (SmolLM2-135M-Instruct end to end, docs/results/smollm2/)."""
