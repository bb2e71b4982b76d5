"""The reproduction study (`python -m rlhf.study`, `make study`): the annotation world, the paper's RM variants, scores
against the latent truth, paired bootstrap verdicts, reports, and REINFORCE/DPO judged by the latent quality.
Imports: `rlhf.cli` and every layer below it; not `rlhf.demo` or `rlhf.results`.
"""
