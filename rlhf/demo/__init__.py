"""`make demo` (`python -m rlhf.demo`): the two-stage recipe on the shipped tiny Llama (`tiny`) and its REINFORCE
stage (`align`).
Imports: `rlhf.cli` and every layer below it; never `rlhf.results` or `rlhf.study`.
"""
