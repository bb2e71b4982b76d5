"""Offline DPO (regular / margin / scaled): `python dpo.py fit --config configs/dpo/<run>.yaml` (LightningCLI)."""
from rlhf.cli import dpo_main
from rlhf.errors import run_main

if __name__ == "__main__":
    run_main(dpo_main)
