"""Reward-model training: `python train.py fit --config configs/reward/<variant>.yaml` (LightningCLI)."""
from rlhf.cli import reward_main
from rlhf.errors import run_main

if __name__ == "__main__":
    run_main(reward_main)
