"""Policy training with REINFORCE/RLOO: `python align.py fit --config configs/align/<run>.yaml` (LightningCLI)."""
from rlhf.cli import align_main
from rlhf.errors import run_main

if __name__ == "__main__":
    run_main(align_main)
