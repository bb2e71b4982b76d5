"""`python -m rlhf.align.compare` on a tiny setup: base vs a LoRA policy checkpoint under a random-head RM.

Win rate pairs sample j of prompt i with the base's sample j of prompt i, ties half; the base against itself is 0.5.
"""

from __future__ import annotations

import dataclasses
import json

import torch
import yaml

from rlhf.align.compare import main, win_rate
from rlhf.data.templates import TemplateSpec
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_backbone
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import build_reward_model
from rlhf.training.checkpoint import save_trained, trained_state_dict


def test_win_rate_counts_ties_half():
    # wins 1, tie 0.5, loss 0, win 1 → 2.5 / 4
    assert win_rate(torch.tensor([2.0, 1.0, 0.0, 5.0]), torch.tensor([1.0, 1.0, 1.0, 4.0])) == 0.625


def test_compare_command_writes_its_table(tiny_llama_dir, synthetic_dir, tmp_path):
    torch.manual_seed(1)
    lora = LoraSpec(r=4, alpha=8)
    rm_backbone, head = BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=lora), HeadSpec()
    config = yaml.safe_dump({"data": {"init_args": {"template": dataclasses.asdict(TemplateSpec(system="")), "max_length": 200}}})
    save_trained(tmp_path / "rm", trained_state_dict(build_reward_model(rm_backbone, head)),
                 {"backbone": dataclasses.asdict(rm_backbone), "head": dataclasses.asdict(head)}, config)
    policy_spec = BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=lora)
    policy = load_backbone(policy_spec, causal_lm=True)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a policy that differs from the base
    save_trained(tmp_path / "policy", trained_state_dict(policy), {"kind": "policy", "backbone": dataclasses.asdict(policy_spec)})
    out = tmp_path / "compare"
    main(["--reward", str(tmp_path / "rm"), "--prompts", str(synthetic_dir / "preference_val.jsonl"), "--base", str(tiny_llama_dir),
          "--policy", f"tuned={tmp_path / 'policy'}", "--n-prompts", "4", "--k", "2", "--max-new-tokens", "6", "--batch-size", "2",
          "--out", str(out)])
    table = (out / "compare.md").read_text()
    assert table.startswith("| Policy | Mean RM reward | Win rate vs base (RM) | Mean resp. length (chars) |")
    assert "| base |" in table and "| tuned |" in table
    rows = {r["policy"]: r for r in json.loads((out / "compare.json").read_text())["rows"]}
    assert rows["base"]["win_rate_vs_base"] == 0.5 and rows["base"]["samples"] == rows["tuned"]["samples"] == 8
    assert rows["tuned"]["mean_reward"] != rows["base"]["mean_reward"]
