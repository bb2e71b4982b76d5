"""last_token_index under left and right padding, head layouts, and padding-invariant rewards."""

import pytest
import torch
from torch.testing import assert_close

from rlhf.data.collate import pad
from rlhf.models.heads import HEAD_LAYOUTS, HeadSpec, RewardHead, attribute_slots, last_token_index
from rlhf.models.reward_model import position_ids_from_mask


def test_last_token_index_right_and_left_padding():
    seqs = [[5, 6, 7], [5], [5, 6, 7, 8, 9]]
    _, right = pad(seqs, pad_id=0, side="right")
    _, left = pad(seqs, pad_id=0, side="left")
    assert last_token_index(right).tolist() == [2, 0, 4]
    assert last_token_index(left).tolist() == [4, 4, 4]


def test_last_token_index_ignores_pad_id_equal_to_eos():
    # pad == eos == 2: the index must come from the mask, not from searching for the pad id
    mask = torch.tensor([[True, True, True, False]])
    ids = torch.tensor([[1, 2, 2, 2]])
    assert last_token_index(mask).item() == 2
    assert ids[0, last_token_index(mask)].item() == 2


def test_last_token_index_rejects_empty_row():
    with pytest.raises(ValueError, match="no real token"):
        last_token_index(torch.tensor([[False, False]]))


def test_position_ids_from_mask():
    mask = torch.tensor([[False, False, True, True], [True, True, True, False]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 0]]


def test_head_layouts_and_slots():
    assert HeadSpec(n_out=1).resolved_slot() == 0
    assert HeadSpec(n_out=5).resolved_slot() == 0
    assert HeadSpec(n_out=9).resolved_slot() == 4  # NeMo-Aligner's helpfulness slot
    assert attribute_slots(9).tolist() == [4, 5, 6, 7, 8]
    assert attribute_slots(1).tolist() == [0, -1, -1, -1, -1]
    with pytest.raises(ValueError, match="n_out"):
        HeadSpec(n_out=3).resolved_slot()
    head = RewardHead(hidden_size=8, n_out=5)
    assert head(torch.randn(3, 8)).shape == (3, 5)
    assert head.attributes == HEAD_LAYOUTS[5]


def test_rewards_do_not_depend_on_padding_side(tiny_llama_dir):
    from rlhf.models.backbone import BackboneSpec
    from rlhf.models.reward_model import build_reward_model

    torch.manual_seed(0)
    model = build_reward_model(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa"), HeadSpec(n_out=5)).eval()
    seqs = [[1, 5, 6, 7, 8, 9, 10], [1, 11, 12], [1, 13, 14, 15, 16]]
    outs = {}
    for side in ("right", "left"):
        ids, mask = pad(seqs, pad_id=0, side=side)
        with torch.no_grad():
            outs[side] = model(ids, mask)
    singles = torch.cat([model(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.bool)) for s in seqs]).detach()
    assert_close(outs["right"], outs["left"], atol=1e-5, rtol=0)
    assert_close(outs["right"], singles, atol=1e-5, rtol=0)
