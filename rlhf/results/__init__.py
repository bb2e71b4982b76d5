"""Published result runs: `python -m rlhf.results.smollm2` (SmolLM2-135M-Instruct end to end, docs/results/smollm2/) and
`python -m rlhf.results.demo_smollm2` (make demo-smollm2), with their data splits, zero-shot baseline and report.
Imports: `rlhf.demo` and every layer below it; not `rlhf.study`.
"""
