"""`make demo-smollm2`: the stages of `make demo` on the real SmolLM2-135M-Instruct, sized for minutes on 2 cores.

Stage 1 regression (6 steps) on the shipped HelpSteer ratings, stage 2 scaled BT from it (8 steps) on hh-rlhf +
HelpSteer2-Preference pairs with the ExPO checkpoint, accuracy on 30 held-out hh-rlhf pairs and the HelpSteer2-
Preference test pairs against the zero-shot baseline, a 1-pair-per-subset RewardBench sample, and 2 REINFORCE steps
(4 prompts x 4 samples of up to 48 new tokens) against the best RM with real before/after samples of 2 eval prompts.
It is `rlhf.results.smollm2.run` with `DEMO` sizes, in
runs/demo-smollm2/. Too short to train a good RM: the numbers show the pipeline on real weights, not the recipe's.
"""

from __future__ import annotations

import json

from rlhf.demo.align import print_results
from rlhf.results.smollm2 import DEMO, run


def main() -> None:
    results = run("runs/demo-smollm2", DEMO)
    print("\nPair accuracy (chance 50%): held-out hh-rlhf | HelpSteer2-Preference test")
    for name, cell in results["pairs"].items():
        hh, hs = cell["hh_val"], cell["hs2p_test"]
        print(f"  {name:<42} {hh['accuracy']:6.1%} of {hh['pairs']}{' (at chance)' if hh['at_chance'] else ''} | {hs['accuracy']:6.1%} of {hs['pairs']} ({hs['ties']} ties apart)")
    print("RewardBench sample (overall): " + ", ".join(f"{k}: {v['overall']:.1%}" for k, v in results["rewardbench_sample"].items()))
    print_results({**results["align"], "wall_seconds": results["wall_seconds"]["reinforce"]})
    print(f"\nDone in {results['wall_seconds']['total']} s. Summary: runs/demo-smollm2/results.json")
    print(json.dumps(results["wall_seconds"]))


if __name__ == "__main__":
    main()
