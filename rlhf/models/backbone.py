"""The backbone builder: a Llama from a local path or hub id, LoRA-wrapped, optionally nf4-quantised (QLoRA).

This is the only module that imports transformers, peft and bitsandbytes, and it keeps them quiet at the source:
transformers logs errors only and shows no loading bars, and bitsandbytes' optional-kernel notice is below its log
level. Attention is FlashAttention-2 when the
`flash_attn` package and CUDA are present and SDPA otherwise (configurable); gradient checkpointing is the
non-reentrant kind, which works with frozen embeddings and LoRA. Reward models take the body without the LM head
(`AutoModel`); policies take `AutoModelForCausalLM`. Loading a checkpoint of trained weights is `rlhf.training.checkpoint`'s job.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "Failed to load CPU gemm_4bit_forward ... pip install kernels"
# peft reads the deprecated `is_gradient_checkpointing` property of every model it wraps
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def _transformers():
    """The transformers package, logging errors only and without progress bars (one "Loading weights" bar per load)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings.

    Args:
        r: adapter rank.
        alpha: scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the adapter input; keep 0.0 where a reference pass shares the model.
        target_modules: names of the linear layers that get adapters.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class BackboneSpec:
    """Which Llama to load and how.

    Args:
        name_or_path: a local Hugging Face directory or a hub id (e.g. meta-llama/Llama-3.1-8B-Instruct).
        quantize: "nf4" loads the frozen base in 4-bit NormalFloat through bitsandbytes (QLoRA); "none" keeps `dtype`.
        dtype: dtype of the frozen base weights (and of LoRA compute under nf4).
        attn_implementation: "auto" picks flash_attention_2 when flash-attn and CUDA are available, else sdpa.
        gradient_checkpointing: recompute activations in backward (non-reentrant) to save memory.
        lora: adapter settings; None trains no adapter (head only).
    """

    name_or_path: str
    quantize: Literal["none", "nf4"] = "none"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    gradient_checkpointing: bool = False
    lora: LoraSpec | None = field(default_factory=LoraSpec)


def resolve_attn_implementation(requested: str) -> str:
    """"auto" → "flash_attention_2" if importable with CUDA, else "sdpa"; other values pass through."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_tokenizer(name_or_path: str):
    """The backbone's tokenizer with an explicit pad token (unk if it has one, else eos) and right padding.

    Rewards are read through `attention_mask`, never through the pad id, so pad == eos is harmless here.
    """
    tokenizer = _transformers().AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def check_tokenizer_fits(tokenizer, model: nn.Module, name_or_path: str) -> None:
    """Fail clearly when the tokenizer can produce ids past the model's embedding table (a tokenizer of another model)."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(f"{name_or_path}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table has {rows} rows "
                         "(a tokenizer of another model?)")


def _quantization_config(spec: BackboneSpec):
    if spec.quantize == "none":
        return None
    return _transformers().BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=DTYPES[spec.dtype],
        bnb_4bit_quant_storage=DTYPES[spec.dtype],  # lets FSDP shard the 4-bit weights
    )


def load_backbone(spec: BackboneSpec, causal_lm: bool = False) -> nn.Module:
    """Load the Llama (body only, or with LM head when `causal_lm`), freeze it and add LoRA adapters.

    Returns a peft model when `spec.lora` is set (base frozen, only `lora_` weights trainable), else the frozen model.
    """
    transformers = _transformers()
    cls = transformers.AutoModelForCausalLM if causal_lm else transformers.AutoModel
    model = cls.from_pretrained(
        spec.name_or_path,
        dtype=DTYPES[spec.dtype],
        attn_implementation=resolve_attn_implementation(spec.attn_implementation),
        quantization_config=_quantization_config(spec),
    )
    model.config.use_cache = False
    model.requires_grad_(False)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec.lora is None:
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=list(spec.lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM" if causal_lm else "FEATURE_EXTRACTION",
    )
    return get_peft_model(model, lora)


def hidden_size(model: nn.Module) -> int:
    """Hidden size H of a (possibly peft-wrapped) HF model."""
    return int(model.config.hidden_size)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA into the base weights (W + (α/r)·B·A) and return the plain HF model; a model without LoRA passes through.

    Merges only float32, unquantised weights: merging into nf4 or bf16 weights is lossy (pitfalls §4.15).
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("merge_lora: load the backbone in float32 without quantisation before merging")
    return model.merge_and_unload()


def sequence_classifier(body: nn.Module, score_weight: torch.Tensor, name_or_path: str, config_fields: dict[str, object]) -> nn.Module:
    """Wrap a plain (merged) HF body and a bias-free (n_out, H) score weight as `AutoModelForSequenceClassification`.

    The config is the base model's `config.json` updated with `config_fields` (id2label, pad_token_id, ...). The wrapper
    is built on the meta device and takes `body` and the score by assignment, so no second copy of the weights exists.
    """
    transformers = _transformers()
    AutoModelForSequenceClassification = transformers.AutoModelForSequenceClassification
    config = transformers.AutoConfig.from_pretrained(name_or_path)
    config.update(config_fields)  # kwargs to from_pretrained would drop the custom fields (reward_slot)
    if config.num_labels != score_weight.shape[0]:
        raise ValueError(f"sequence_classifier: config has {config.num_labels} labels, the score weight {score_weight.shape[0]} rows")
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    setattr(model, model.base_model_prefix, body)
    model.score = nn.Linear(score_weight.shape[1], score_weight.shape[0], bias=False, device="meta")
    model.score.weight = nn.Parameter(score_weight.detach().clone(), requires_grad=False)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"sequence_classifier: {type(model).__name__} has tensors besides body and score, e.g. {left[:3]}")
    return model


def save_adapter(model: nn.Module, directory: str) -> None:
    """Write peft's adapter directory (adapter_config.json + adapter_model.safetensors), LoRA weights only."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise ValueError("save_adapter: the backbone has no LoRA adapter (the checkpoint trained the head only)")
    model.save_pretrained(directory, save_embedding_layers=False)


def load_adapter_weights(model: nn.Module, directory: str) -> None:
    """Copy a peft adapter directory's weights into `model`'s existing LoRA layers (same targets and rank).

    Raises ValueError when a saved tensor has no LoRA layer to go to, or a LoRA layer got no tensor.
    """
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    result = set_peft_model_state_dict(model, load_peft_weights(directory, device="cpu"))
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise ValueError(f"{directory}: adapter does not fit the model; unexpected {result.unexpected_keys[:3]}, missing {missing[:3]}")


def load_sequence_classifier(directory: str) -> nn.Module:
    """An exported `AutoModelForSequenceClassification` directory (see `rlhf.reward.export`), fp32, eval mode."""
    return _transformers().AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32).eval()


@contextmanager
def adapter_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the peft model computes the frozen base model: the reference policy, with no second copy.

    Raises ValueError for a model without a LoRA adapter (then there is no policy/reference distinction).
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise ValueError("adapter_disabled: the model has no LoRA adapter to disable")
    with model.disable_adapter():
        yield model
