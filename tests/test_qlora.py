"""nf4 QLoRA on CPU: the frozen base is bitsandbytes Linear4bit, the LoRA + head train and rewards stay finite."""

import torch

from rlhf.data.collate import pad
from rlhf.losses import scaled_bradley_terry
from rlhf.models.backbone import BackboneSpec, LoraSpec
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import build_reward_model


def test_nf4_loads_and_trains_on_cpu(tiny_llama_dir):
    import bitsandbytes as bnb

    torch.manual_seed(0)
    spec = BackboneSpec(str(tiny_llama_dir), quantize="nf4", dtype="float32", attn_implementation="sdpa",
                        gradient_checkpointing=True, lora=LoraSpec(r=4, alpha=8, target_modules=("q_proj", "v_proj")))
    model = build_reward_model(spec, HeadSpec(n_out=1))
    linear4 = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4) >= 4  # q/v base layers (and the rest of the linears) are 4-bit
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    opt = torch.optim.AdamW(trainable.values(), lr=1e-2)
    chosen, rejected = [[1, 5, 6, 7, 8], [1, 9, 10, 11]], [[1, 20, 21], [1, 30, 31, 32, 33, 34]]
    ids, mask = pad(chosen + rejected, pad_id=0)
    losses = []
    for _ in range(3):
        rewards = model.reward(model(ids, mask))
        loss = scaled_bradley_terry(*rewards.chunk(2), torch.tensor([1.0, 2.0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    # a pairwise loss is blind to the head bias, so check LoRA B and the head weight
    moved = [n for n in trainable if "lora_B" in n or n == "head.linear.weight"]
    assert len(moved) >= 3 and all(not torch.equal(before[n], trainable[n].detach()) for n in moved)
