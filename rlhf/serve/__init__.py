"""The reward-model HTTP server (`python -m rlhf.serve`): LitServe API, request bodies, the connection guard and the
browser playground (static/playground.html).
Imports: `rlhf.reward` and the layers below it; not dpo or align.
"""
