"""`python -m rlhf.serve`: the reward-model HTTP server (`rlhf.serve.server.main`)."""

from rlhf.errors import run_main
from rlhf.serve.server import main

if __name__ == "__main__":
    run_main(main)
