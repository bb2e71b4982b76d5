"""Token-budget batching: hand-worked groupings, and on random lengths every micro-batch is within the budget and every
example appears exactly once (packed and padded cost); the data module's loaders obey the budget end to end.
"""

from __future__ import annotations

import random

import pytest

from rlhf.data.datamodules import LoaderSpec, PreferenceDataModule
from rlhf.data.templates import TemplateSpec
from rlhf.data.token_budget import batch_cost, budget_batches
from rlhf.types import PackedPreferenceBatch, PreferenceBatch


def test_cost_hand_values():
    assert batch_cost([5, 3, 2], packed=True) == 10
    assert batch_cost([5, 3, 2], packed=False) == 15  # 3 rows padded to 5


def test_hand_grouping():
    lengths = [[5], [3], [8], [2], [7]]
    # longest first: 8, 7, 5, 3, 2. Packed, budget 10: {8}, {7} (8+7 > 10), {5, 3, 2} = 10
    assert budget_batches(lengths, 10, packed=True) == [[2], [4], [0, 1, 3]]
    # padded, budget 16: {8, 7} costs 2 x 8 = 16; adding 5 would cost 24; {5, 3, 2} costs 3 x 5 = 15
    assert budget_batches(lengths, 16, packed=False) == [[2, 4], [0, 1, 3]]


def test_pairs_stay_whole_and_oversize_raises():
    # by longest row: pair 0 (max 6, 10 tokens), pair 2 (max 5, 7 tokens), pair 1 (max 3, 6 tokens); a pair is never split
    assert budget_batches([[4, 6], [3, 3], [2, 5]], 13, packed=True) == [[0], [2, 1]]  # 10 + 7 > 13; 7 + 6 = 13
    assert budget_batches([[4, 6], [3, 3], [2, 5]], 12, packed=True) == [[0], [2], [1]]
    with pytest.raises(ValueError, match="alone exceeds"):
        budget_batches([[4, 9]], 12, packed=True)


@pytest.mark.parametrize("packed", [True, False])
def test_random_lengths_every_batch_within_budget_every_example_once(packed):
    rng = random.Random(0)
    lengths = [[rng.randint(1, 60), rng.randint(1, 60)] for _ in range(300)]
    batches = budget_batches(lengths, 500, packed)
    assert sorted(i for b in batches for i in b) == list(range(300))
    assert all(batch_cost([n for i in b for n in lengths[i]], packed) <= 500 for b in batches)
    assert len(batches) < 300 / 2  # it does batch: more than two examples per micro-batch on average


@pytest.mark.parametrize("packing", [True, False])
def test_data_module_loaders_obey_budget(tiny_llama_dir, synthetic_dir, packing):
    budget = 1200  # 2 rows x max_length 256 = 512 fits: at least one pair per micro-batch
    dm = PreferenceDataModule(train_path=str(synthetic_dir / "preference_train.jsonl"), val_path=str(synthetic_dir / "preference_val.jsonl"),
                              tokenizer=str(tiny_llama_dir), template=TemplateSpec(system=""), max_length=256,
                              loader=LoaderSpec(batch_size=2, packing=packing, token_budget=budget))
    dm.setup("fit")
    seen = 0
    for batch in dm.train_dataloader():
        if packing:
            assert isinstance(batch, PackedPreferenceBatch) and batch.tokens.input_ids.numel() <= budget
        else:
            assert isinstance(batch, PreferenceBatch) and batch.input_ids.numel() <= budget
        seen += batch.num_pairs
    assert seen == len(dm._train) and len(dm.train_dataloader()) < len(dm._train)



@pytest.mark.parametrize("loss", ["mse"])  # pairs: over 2 ranks x 2 accumulation in tests/test_multiprocess.py
def test_one_step_over_micro_batches_equals_one_plain_batch(loss, tiny_llama_dir, synthetic_dir, tmp_path):
    """All micro-batches of an epoch (different sizes) accumulated into one SGD step (lr 1) move the weights as one
    plain batch of all the examples: each labelled attribute (or pair) weighs the same, not each micro-batch."""
    from safetensors.torch import load_file

    from tests.test_multiprocess import BUDGET, _common, _fit, assert_same_sgd_step

    name = "ratings" if loss == "mse" else "preference"
    train = tmp_path / "train.jsonl"  # a few rows keep the plain batch small
    train.write_text("".join((synthetic_dir / f"{name}_train.jsonl").read_text().splitlines(True)[:16]))
    if loss == "mse":
        data = ["--model.loss=mse", "--model.head.n_out=5", "--data=rlhf.data.datamodules.RatingDataModule", "--data.loader.token_budget=1000"]
    else:
        data = ["--model.loss=scaled_bt", "--data=rlhf.data.datamodules.PreferenceDataModule", "--data.loader.token_budget=1200"]
    data += [f"--data.train_path={train}", f"--data.val_path={synthetic_dir}/{name}_val.jsonl"]
    one_step = ["--trainer.limit_val_batches=0", "--trainer.accelerator=cpu", *BUDGET[1:]]  # shuffle off, SGD lr 1
    # accumulation longer than the epoch: Lightning steps once at the epoch's end, over all its micro-batches
    micro = _fit(data + _common(tiny_llama_dir, tmp_path / "budget", 1, 1) + one_step + ["--trainer.accumulate_grad_batches=64"])[0]
    whole = [a for a in data if "token_budget" not in a]
    plain = _fit(whole + _common(tiny_llama_dir, tmp_path / "plain", 1000, 1) + one_step)[0]
    _fit(whole + _common(tiny_llama_dir, tmp_path / "start", 1000, 1) + one_step + ["--model.optimizer.lr=0.0"])  # the same start, unmoved
    assert len(micro) > 2 and len(plain) == 1
    budget, plain, start = (load_file(tmp_path / f"{r}/checkpoint/model.safetensors") for r in ("budget", "plain", "start"))
    assert_same_sgd_step(budget, plain, start)
