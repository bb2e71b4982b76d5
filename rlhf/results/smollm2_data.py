"""The fixed data splits of the SmolLM2 recipe (configs/smollm2/), written from the files the repo ships.

- ratings: the 500 HelpSteer ratings, rows [0, 450) train and [450, 500) validation (file order, no shuffle).
- pairs: hh-rlhf harmless-base pairs [0, 1200) train, [1200, 1500) held out (less the rows whose transcripts
  differ before the last reply); the 95 HelpSteer2-Preference
  training pairs (ties included as magnitude 0, which the loader drops and counts) join the training file; its 5
  test pairs are a second test set. Training pairs are written in TRL's explicit format with `preference_strength`.
- prompts for REINFORCE: hh-rlhf harmless prompts whose text is not the first user turn of any of the 1,500
  pairs, so the RM never saw them; the last 32 are held out for evaluating the policy (prompts_eval). Left out: helpful-base (a Git LFS pointer upstream) and any shuffling.
`python -m rlhf.results.smollm2_data --out runs/smollm2/data` (also run by `make smollm2-data`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlhf.data.formats import load_pairs

DATA = Path("data")
HH_PAIRS = DATA / "hh-rlhf/harmless-base-test-pairs-first1500.jsonl"
HH_PROMPTS = DATA / "hh-rlhf/harmless-test-prompts.jsonl"
HS2P = DATA / "helpsteer2-preference/first100-conversational.jsonl"
RATINGS = DATA / "helpsteer/helpsteer_v1_train_first500.jsonl"
HH_TRAIN, RATINGS_TRAIN, EVAL_PROMPTS = 1200, 450, 32
DEFAULT_OUT = Path("runs/smollm2/data")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _first_human_turn(transcript: str) -> str:
    """The text after the first "\\n\\nHuman: " up to "\\n\\nAssistant:", stripped (how the prompts file was made)."""
    return transcript.split("\n\nHuman: ", 1)[1].split("\n\nAssistant:", 1)[0].strip()


def _parseable_hh(lines: list[str], out: Path) -> list[str]:
    """The hh-rlhf rows whose two transcripts share every turn but the last (a few do not and cannot be compared)."""
    from rlhf.data.formats import PAIR_TEXTS
    from rlhf.data.rows import BadRowError, read_rows

    rows = read_rows(str(_write(out / "hh_check.jsonl", lines)))
    (out / "hh_check.jsonl").unlink()
    kept = []
    for line, row in zip(lines, rows, strict=True):
        try:
            PAIR_TEXTS["hh_rlhf"](row)
        except BadRowError:
            continue
        kept.append(line)
    return kept


def write_splits(out: str | Path = DEFAULT_OUT) -> dict[str, Path]:
    """Write the splits under `out` (overwriting them) and return their paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ratings, hh = _lines(RATINGS), _lines(HH_PAIRS)
    files = {
        "ratings_train": _write(out / "ratings_train.jsonl", ratings[:RATINGS_TRAIN]),
        "ratings_val": _write(out / "ratings_val.jsonl", ratings[RATINGS_TRAIN:]),
        "hh_val": _write(out / "hh_val.jsonl", _parseable_hh(hh[HH_TRAIN:], out)),
        "hs2p_test": _write(out / "hs2p_test.jsonl", [line for line in _lines(HS2P) if json.loads(line)["split"] == "test"]),
    }
    hh_train, _, _ = load_pairs(_write(out / "hh_train_raw.jsonl", hh[:HH_TRAIN]), "hh_rlhf")
    (out / "hh_train_raw.jsonl").unlink()
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "preference_strength": p.magnitude, "source": "hh-rlhf"} for p in hh_train]
    for line in _lines(HS2P):
        row = json.loads(line)
        if row["split"] == "train":
            rows.append({"prompt": row["chosen"][0]["content"], "chosen": row["chosen"][-1]["content"], "rejected": row["rejected"][-1]["content"],
                         "preference_strength": row["preference_strength"], "source": "helpsteer2-preference"})
    files["pairs_train"] = _write(out / "pairs_train.jsonl", [json.dumps(r) for r in rows])
    seen = {_first_human_turn(json.loads(line)["chosen"]) for line in hh}
    unseen = [line for line in _lines(HH_PROMPTS) if json.loads(line)["prompt"].strip() not in seen]
    files["prompts_train"] = _write(out / "prompts_train.jsonl", unseen[:-EVAL_PROMPTS])
    files["prompts_eval"] = _write(out / "prompts_eval.jsonl", unseen[-EVAL_PROMPTS:])
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlhf.results.smollm2_data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    for name, path in write_splits(parser.parse_args(argv).out).items():
        print(f"{name}: {path} ({len(_lines(path))} rows)")


if __name__ == "__main__":
    main()
