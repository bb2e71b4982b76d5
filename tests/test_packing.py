"""Padding-free packing: hand values of `pack` and of the masked path's row layout, then packed == padded on a tiny Llama.

Rewards (fp32 CPU, ≤ 1e-5), the scaled-BT loss and the gradients of every trained weight (LoRA + head) agree
between a packed row and the same sequences padded right or left, on the SDPA and eager masked paths (whose row
layout leaves padded tails, so those are covered too); a 2-step
fit through the CLI with `loader.packing` trains on `PackedPreferenceBatch`es; packed scoring equals padded scoring.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.data.collate import EncodedPair, collate_preferences, collate_preferences_packed, pack
from rlhf.eval.score_pairs import score_sequences
from rlhf.losses import PAIRWISE_LOSSES
from rlhf.models.backbone import BackboneSpec, LoraSpec
from rlhf.models.heads import HeadSpec
from rlhf.models.packing import row_layout, segment_ids
from rlhf.models.reward_model import build_reward_model
from rlhf.types import PackedPreferenceBatch

SEQS = [[1, 5, 9, 13, 4, 2], [1, 7, 2], [1, 30, 31, 32, 33, 34, 35, 2], [1, 8, 8, 2]]


def test_pack_hand_values():
    t = pack([[5, 6, 7], [8, 9]])
    assert t.input_ids.tolist() == [[5, 6, 7, 8, 9]]
    assert t.position_ids.tolist() == [[0, 1, 2, 0, 1]]  # restart at each sequence
    assert t.cu_seqlens.tolist() == [0, 3, 5] and t.cu_seqlens.dtype == torch.int32
    assert t.last_index.tolist() == [2, 4] and t.num_sequences == 2
    with pytest.raises(ValueError):
        pack([[1], []])


def test_segments_and_row_layout_hand_values():
    cu = torch.tensor([0, 3, 5, 9], dtype=torch.int32)  # lengths 3, 2, 4
    assert segment_ids(cu).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    # width 4 (the longest); longest first: seq 2 → row 0; seq 0 (3) → row 1; seq 1 (2) fits neither → row 2
    dest, rows, width = row_layout(cu)
    assert (rows, width) == (3, 4) and dest.tolist() == [4, 5, 6, 8, 9, 0, 1, 2, 3]
    # lengths 3, 1, 4: seq 1 (1 token) fills row 1 after seq 0
    dest, rows, width = row_layout(torch.tensor([0, 3, 4, 8], dtype=torch.int32))
    assert (rows, width) == (2, 4) and dest.tolist() == [4, 5, 6, 7, 0, 1, 2, 3]


def test_packed_preference_collate_order_and_move():
    items = [EncodedPair([1, 2], [3, 4, 5], 2), EncodedPair([6], [7, 8], 1)]
    b = collate_preferences_packed(items)
    assert isinstance(b, PackedPreferenceBatch) and b.num_pairs == 2
    assert b.tokens.input_ids.tolist() == [[1, 2, 6, 3, 4, 5, 7, 8]]  # chosen sequences first, then rejected
    assert b.tokens.last_index.tolist() == [1, 2, 5, 7]
    moved = b.to("cpu")
    assert torch.equal(moved.tokens.position_ids, b.tokens.position_ids) and torch.equal(moved.margin, torch.tensor([2.0, 1.0]))


def _model(tiny_llama_dir, attn: str):
    torch.manual_seed(0)
    model = build_reward_model(BackboneSpec(str(tiny_llama_dir), attn_implementation=attn, lora=LoraSpec(r=4, target_modules=("q_proj", "v_proj"))), HeadSpec())
    with torch.no_grad():  # LoRA B starts at zero, which would make every lora_A gradient zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    return model.train()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_packed_rewards_loss_and_gradients_match_padded(tiny_llama_dir, attn, side):
    model = _model(tiny_llama_dir, attn)
    items = [EncodedPair(SEQS[0], SEQS[1], 3), EncodedPair(SEQS[2], SEQS[3], 1)]
    padded, packed = collate_preferences(items, pad_id=0, side=side), collate_preferences_packed(items)
    trained = [p for p in model.parameters() if p.requires_grad]
    results = []
    for forward in (lambda: model(padded.input_ids, padded.attention_mask), lambda: model.forward_packed(packed.tokens)):
        model.zero_grad()
        rewards = model.reward(forward())  # (4,)
        chosen, rejected = rewards.chunk(2)
        loss = PAIRWISE_LOSSES["scaled_bt"](chosen, rejected, padded.margin)
        loss.backward()
        results.append((rewards.detach(), loss.detach(), [p.grad.clone() for p in trained]))
    (r_pad, l_pad, g_pad), (r_pack, l_pack, g_pack) = results
    torch.testing.assert_close(r_pack, r_pad, atol=1e-5, rtol=0)
    assert r_pad.std() > 1e-3  # the four rewards differ: a wrong gather would show
    torch.testing.assert_close(l_pack, l_pad, atol=1e-6, rtol=0)
    assert len(g_pad) > 2 and all(g.abs().sum() > 0 for g in g_pad)
    for a, b in zip(g_pack, g_pad):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_packing_without_mask_would_cross_sequences(tiny_llama_dir):
    """Guard for the test above: attending across the packed row (plain causal) changes the later rewards."""
    model = _model(tiny_llama_dir, "sdpa").eval()
    t = pack(SEQS[:2])
    with torch.no_grad():
        exact = model.forward_packed(t)[:, 0]
        causal = model.backbone(input_ids=t.input_ids, position_ids=t.position_ids, attention_mask=torch.ones_like(t.input_ids), use_cache=False)
        crossed = model.head(causal.last_hidden_state[0, t.last_index])[:, 0]
    assert abs(float(crossed[1] - exact[1])) > 1e-4


def test_packed_scoring_equals_padded(tiny_llama_dir):
    model = _model(tiny_llama_dir, "sdpa")
    padded = score_sequences(model, SEQS + SEQS[:1], pad_id=0, batch_size=3)
    packed = score_sequences(model, SEQS + SEQS[:1], pad_id=0, batch_size=3, packing=True)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=0)
    assert model.training  # mode restored


def test_two_step_fit_with_packing(tiny_llama_dir, synthetic_dir, tmp_path):
    from tests.test_reward_module import _args, _fit

    cli, before = _fit(_args(tiny_llama_dir, synthetic_dir, tmp_path, "scaled_bt", ("--data.loader.packing=true",)))
    assert isinstance(next(iter(cli.datamodule.train_dataloader())), PackedPreferenceBatch)
    assert isinstance(next(iter(cli.datamodule.val_dataloader())), PackedPreferenceBatch)
    assert cli.trainer.global_step == 2
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    cli.trainer.validate(cli.model, datamodule=cli.datamodule)
    assert math.isfinite(float(cli.trainer.callback_metrics["val/accuracy"]))
    changed = [n for n, p in cli.model.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed


@pytest.mark.gpu
def test_flash_attention_varlen_packing_matches_padded(tiny_llama_dir):
    """CUDA + flash-attn only: the varlen path (no mask, position ids only) gives the padded rewards (bf16 tolerance)."""
    pytest.importorskip("flash_attn")
    torch.manual_seed(0)
    spec = BackboneSpec(str(tiny_llama_dir), dtype="bfloat16", attn_implementation="flash_attention_2", lora=LoraSpec(r=4, target_modules=("q_proj", "v_proj")))
    model = build_reward_model(spec, HeadSpec()).cuda().eval()
    padded = collate_preferences([EncodedPair(SEQS[0], SEQS[1], 1), EncodedPair(SEQS[2], SEQS[3], 1)], pad_id=0).to("cuda")
    packed = collate_preferences_packed([EncodedPair(SEQS[0], SEQS[1], 1), EncodedPair(SEQS[2], SEQS[3], 1)]).to("cuda")
    with torch.no_grad():
        torch.testing.assert_close(model(packed.tokens).float(), model(padded.input_ids, padded.attention_mask).float(), atol=2e-2, rtol=0)
