"""ReinforceModule end to end on CPU: the RM scores text in its own template; a 2-step fit through `align_main`
changes only the policy's LoRA weights (base and RM bit-identical, KL exactly 0 at step 0, finite loss, checkpoint
keys = the LoRA weights); and with a programmatic reward the method optimises, for two seeds, by far more than the
seed-to-seed spread of the starting reward.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlhf.align.module import ObjectiveSpec, ReinforceModule
from rlhf.align.rewards import CharFrequencyReward, RewardModelScore
from rlhf.cli import align_main
from rlhf.data.prompts import PromptDataModule
from rlhf.data.templates import TemplateSpec, render
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_tokenizer
from rlhf.models.heads import HeadSpec
from rlhf.models.policy import GenerationSpec
from rlhf.models.reward_model import build_reward_model
from rlhf.training.checkpoint import save_trained, trained_state_dict
from tests.weight_checks import assert_only_trained_weights_changed

REPO = Path(__file__).resolve().parents[1]
RM_TEMPLATE = TemplateSpec(name="steerlm", system="You are a reward model.")
PROMPTS = ["Tell me about the cat.", "What is a moon like?", "Please tell me about the boat.", "Why is the sky blue?"]


class Recorder(L.Callback):
    """Keeps every logged metric of every training batch."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.fixture(scope="module")
def rm_checkpoint(tiny_llama_dir, tmp_path_factory) -> Path:
    """A reward-model checkpoint of this repo (random head) whose config.yaml names a template unlike the policy's."""
    torch.manual_seed(1)
    backbone, head = BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)), HeadSpec()
    model = build_reward_model(backbone, head)
    config = yaml.safe_dump({"data": {"class_path": "rlhf.data.datamodules.PreferenceDataModule", "init_args": {
        "template": dataclasses.asdict(RM_TEMPLATE), "max_length": 200}}})
    out = tmp_path_factory.mktemp("rm") / "checkpoint"
    save_trained(out, trained_state_dict(model), {"backbone": dataclasses.asdict(backbone), "head": dataclasses.asdict(head)}, config)
    return out


def test_reward_model_scores_text_in_its_own_template(rm_checkpoint, tiny_llama_dir):
    source = RewardModelScore(str(rm_checkpoint), batch_size=2)
    assert source.model is None  # nothing loads before build()
    source.build()
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    ids = source.encode(["Hi there"], ["Hello"])
    assert ids == [tokenizer(render(RM_TEMPLATE, "Hi there", "Hello"))["input_ids"]]
    assert not any(p.requires_grad for p in source.parameters())
    scores = source.score(["Hi there", "What?", "Hi there"], ["Hello", "A cat.", "Hello"])
    assert scores.shape == (3,) and scores.dtype == torch.float32 and scores[0] == scores[2] and scores[0] != scores[1]
    with torch.no_grad():
        direct = source.model.reward(source.model(torch.tensor(ids), torch.ones(1, len(ids[0]), dtype=torch.bool)))
    torch.testing.assert_close(scores[:1], direct)


def test_reward_model_score_reads_an_hf_export_the_same_way(rm_checkpoint, tmp_path):
    from rlhf.reward.export import export_hf

    export = export_hf(rm_checkpoint, tmp_path / "hf")  # AutoModelForSequenceClassification dir with tokenizer + config.yaml
    prompts, responses = ["Hi there", "What is a cat?"], ["Hello", "A cat is an animal."]
    scores = []
    for path in (rm_checkpoint, export):
        source = RewardModelScore(str(path))
        source.build()
        scores.append(source.score(prompts, responses))
    torch.testing.assert_close(scores[1], scores[0], atol=1e-5, rtol=1e-4)


def _fit_args(policy_dir: Path, rm_dir: Path, prompts: Path, out: Path) -> list[str]:
    return [
        f"--model.backbone.name_or_path={policy_dir}", "--model.backbone.attn_implementation=sdpa",
        "--model.backbone.lora.r=4", "--model.backbone.lora.alpha=8",
        "--model.reward=rlhf.align.rewards.RewardModelScore", f"--model.reward.path={rm_dir}",
        "--model.generation.num_samples=4", "--model.generation.max_new_tokens=8",
        "--model.objective.unended_penalty=0.0",  # a random policy rarely samples EOS; count every sample
        "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.01", "--model.sample_table_every_n_steps=1",
        f"--data.path={prompts}", "--data.split=train", "--data.template.system=", "--data.max_prompt_length=128", "--data.batch_size=2",
        "--trainer.max_steps=2", "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.accelerator=cpu", f"--trainer.default_root_dir={out}", f"--checkpoint.dirpath={out / 'checkpoint'}", "--seed_everything=0",
    ]


def test_two_step_fit_changes_only_lora_weights(tiny_llama_dir, rm_checkpoint, synthetic_dir, tmp_path):
    cli = align_main(_fit_args(tiny_llama_dir, rm_checkpoint, synthetic_dir / "preference_train.jsonl", tmp_path), run=False)
    cli.model.configure_model()  # build now to snapshot the weights; the trainer's call is then a no-op
    policy_before = {n: p.detach().clone() for n, p in cli.model.model.named_parameters()}
    rm_before = {n: p.detach().clone() for n, p in cli.model.reward.named_parameters()}
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    assert cli.trainer.global_step == 2 and len(recorder.steps) == 2
    assert recorder.steps[0]["rollout/kl"] == 0.0 and recorder.steps[0]["rollout/kl_k1"] == 0.0  # LoRA B = 0 at step 0
    assert recorder.steps[1]["rollout/kl"] > 0.0
    assert all(math.isfinite(s["train/loss"]) for s in recorder.steps)
    for key in ("rollout/score", "rollout/length", "rollout/ended_fraction", "rollout/entropy", "time/generate", "time/score", "time/train"):
        assert key in recorder.steps[-1], key  # time/* is logged in the module's on_train_batch_end, after callbacks
    trained = {n for n, p in cli.model.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    assert_only_trained_weights_changed(cli.model.model, policy_before)
    for name, p in cli.model.reward.named_parameters():
        assert torch.equal(p.detach(), rm_before[name]), f"reward model weight {name} changed"
    assert set(load_file(str(tmp_path / "checkpoint" / "model.safetensors"))) == trained
    assert "kl_coef: 0.01" in (tmp_path / "checkpoint" / "config.yaml").read_text()
    assert (tmp_path / "samples.csv").read_text().startswith("step,prompt,response,score,ended,length")
    summary = json.loads((tmp_path / "checkpoint" / "summary.json").read_text())
    assert summary["global_step"] == 2 and "rollout/score" in summary["metrics"] and summary["config_hash"]


def _reward_curve(policy_dir: Path, prompts: Path, seed: int, steps: int) -> list[float]:
    L.seed_everything(seed, verbose=False)
    module = ReinforceModule(
        BackboneSpec(str(policy_dir), attn_implementation="sdpa", lora=LoraSpec(r=8, alpha=16)), CharFrequencyReward("e"),
        GenerationSpec(num_samples=4, max_new_tokens=16), ObjectiveSpec(unended_penalty=0.0), optimizer=partial(torch.optim.Adam, lr=2e-3),
    )
    data = PromptDataModule(path=str(prompts), tokenizer=str(policy_dir), template=TemplateSpec(system=""), batch_size=4)
    recorder = Recorder()
    trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        accelerator="cpu", callbacks=[recorder])
    trainer.fit(module, datamodule=data)
    return [s["rollout/score"] for s in recorder.steps]


def test_reinforce_raises_a_programmatic_reward(real_tiny_llama, tmp_path):
    # reward = fraction of "e" in the response; the pretrained tiny model starts near English's ~10-20%.
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    curves = [_reward_curve(real_tiny_llama, prompts, seed, steps=12) for seed in (0, 1)]
    starts = [sum(c[:2]) / 2 for c in curves]
    ends = [sum(c[-3:]) / 3 for c in curves]
    noise = abs(starts[0] - starts[1])  # seed-to-seed spread of the untrained policy's mean reward
    for start, end, curve in zip(starts, ends, curves):
        assert end - start > max(0.2, 3 * noise), f"no clear rise: {[round(x, 3) for x in curve]}"


@pytest.fixture(scope="module")
def eos_policy_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """A random tiny Llama that ends about half of its 8-token samples: every input embedding carries one large
    shared direction, so the final hidden state barely depends on the input, and the (untied) LM head row of EOS
    points along it with logit ≈ 2.2 (P(EOS) ≈ e^2.2 / (e^2.2 + 104) ≈ 8% per token, the other logits ≈ 0)."""
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig.from_pretrained(tiny_llama_dir)
    config.tie_word_embeddings = False
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.add_(3.0 * torch.randn(config.hidden_size))
        hidden = model.model(input_ids=torch.randint(3, 105, (8, 12))).last_hidden_state.reshape(-1, config.hidden_size)
        direction = hidden.mean(0)
        model.lm_head.weight[config.eos_token_id] = 2.2 * direction / direction.dot(direction)
    out = tmp_path_factory.mktemp("eos-policy")
    model.save_pretrained(out)
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_llama_dir / name).exists():
            shutil.copy(tiny_llama_dir / name, out / name)
    return out


def test_default_rule_fit_with_a_policy_that_ends(eos_policy_dir, rm_checkpoint, synthetic_dir, tmp_path):
    """RLOO over ended samples only (unended_penalty None, the default) inside a fit: some samples end, some do not."""
    args = [a for a in _fit_args(eos_policy_dir, rm_checkpoint, synthetic_dir / "preference_train.jsonl", tmp_path) if "unended_penalty" not in a]
    cli = align_main(args + ["--trainer.max_steps=3"], run=False)
    assert cli.model.objective.unended_penalty is None
    cli.model.configure_model()
    before = {n: p.detach().clone() for n, p in cli.model.model.named_parameters()}
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ended = [s["rollout/ended_fraction"] for s in recorder.steps]
    assert all(0 < e < 1 for e in ended), ended  # both kinds in every step
    assert any(s["train/counted_fraction"] > 0 for s in recorder.steps) and all(math.isfinite(s["train/loss"]) for s in recorder.steps)
    assert_only_trained_weights_changed(cli.model.model, before)


@pytest.mark.parametrize("dropout_in_gradient", [False, True])
def test_kl_uses_log_probs_without_lora_dropout(eos_policy_dir, monkeypatch, dropout_in_gradient):
    """With LoRA dropout 0.9 and a reference that IS the policy without dropout, the KL must be exactly 0."""
    from rlhf.align import module as reinforce_module
    from rlhf.data.prompts import EncodedPrompt, collate_prompts
    from rlhf.models.policy import eval_mode, token_logprobs

    module = ReinforceModule(
        BackboneSpec(str(eos_policy_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8, dropout=0.9)), CharFrequencyReward("e"),
        GenerationSpec(num_samples=2, max_new_tokens=6), ObjectiveSpec(dropout_in_gradient=dropout_in_gradient),
    )
    module.configure_model()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # LoRA B = 0 would hide dropout: the adapter output is 0 with or without it

    def policy_without_dropout(model, ids, mask, start, temperature=1.0, chunk_tokens=None):
        with torch.no_grad(), eval_mode(model):
            return token_logprobs(model, ids, mask, start, temperature, chunk_tokens)

    kls: list[torch.Tensor] = []
    original = reinforce_module.sequence_kl
    monkeypatch.setattr(reinforce_module, "reference_logprobs", policy_without_dropout)
    monkeypatch.setattr(reinforce_module, "sequence_kl", lambda *a: kls.append(original(*a)) or kls[-1])
    tokenizer = load_tokenizer(str(eos_policy_dir))
    batch = collate_prompts([EncodedPrompt("Hi", tokenizer("Hi")["input_ids"])], tokenizer.pad_token_id)
    loss = module.training_step(batch, 0)
    assert torch.equal(kls[0], torch.zeros_like(kls[0])), kls[0]
    assert loss.requires_grad and torch.isfinite(loss)
