"""Offline DPO baselines: `DPOModule` (the paper's DPO variants against the adapter-off reference policy).
Imports: `rlhf.reward` and the layers below it; not align or serve.
"""
