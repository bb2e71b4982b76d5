"""`python -m rlhf.demo` (`make demo`): the two-stage recipe end to end on the tiny Llama (`rlhf.demo.tiny`)."""

from rlhf.demo.tiny import cli
from rlhf.errors import run_main

if __name__ == "__main__":
    run_main(cli)
