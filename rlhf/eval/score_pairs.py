"""Score text pairs with a reward model: the RM's own template, evaluation's "truncate" rule, padding-invariant.

Responses are rendered and tokenised by `rlhf.data.encode.Encoder` with the "truncate" rule (evaluation never
drops a pair; truncated pairs are flagged and counted), then scored under no_grad in eval mode in batches of
sequences sorted by length (less padding); scores come back in input order and the model's train/eval mode is
restored. Rewards are read at the last attended token, so batch size and padding side do not change them.
`read_eval_settings` recovers the template and max_length a checkpoint was trained with from its config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml
from torch import Tensor

from rlhf.data.collate import PaddingSide, pack, pad
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.templates import TemplateSpec
from rlhf.eval.rewardbench_data import BenchPair
from rlhf.models.reward_model import RewardModel

Progress = Callable[[int], None]
"""Called with the number of items just finished (for a progress bar)."""

DEFAULT_MAX_LENGTH = 4096  # the data modules' default, used when a config leaves max_length out


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids of N pairs (prompt included) and which pairs the "truncate" rule cut."""

    chosen: list[list[int]]
    rejected: list[list[int]]
    truncated: list[bool]

    @property
    def identical(self) -> list[bool]:
        """Pairs whose two sequences are the same tokens (e.g. code answers cut before they differ): exact ties."""
        return [c == r for c, r in zip(self.chosen, self.rejected)]


@dataclass(frozen=True)
class PairScores:
    """Rewards of N pairs, in input order: chosen (N,) and rejected (N,) float32; truncated and identical (N,) bool."""

    chosen: Tensor
    rejected: Tensor
    truncated: Tensor
    identical: Tensor


def encode_pairs(encoder: Encoder, pairs: Sequence[BenchPair], progress: Progress | None = None) -> EncodedPairs:
    """Tokenise every pair under the "truncate" rule (prompt cut from the left first, the same for both responses)."""
    stats, chosen, rejected, truncated = EncodeStats(), [], [], []
    for p in pairs:
        before = stats.truncated
        ids = encoder.encode(p.prompt, [p.chosen, p.rejected], "truncate", stats)
        if ids is None:  # cannot happen: "truncate" never drops
            raise RuntimeError(f"the truncate rule dropped pair ({p.subset}, {p.id})")
        chosen.append(ids[0])
        rejected.append(ids[1])
        truncated.append(stats.truncated > before)
        if progress is not None:
            progress(1)
    return EncodedPairs(chosen, rejected, truncated)


@torch.no_grad()
def score_sequences(model: RewardModel, sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int, padding_side: PaddingSide = "right", progress: Progress | None = None, all_outputs: bool = False, packing: bool = False) -> Tensor:
    """(N,) float32 rewards of N token sequences (every head output, (N, n_out), with `all_outputs`), `batch_size`
    distinct sequences per forward pass, longest first; with `packing` each batch is one unpadded packed row.

    Identical sequences are scored once and share the value, so a pair that truncation made identical is an exact
    tie (wrong) whatever the batching; otherwise float noise between batches could flip its decision.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    slot: dict[tuple[int, ...], int] = {}
    index = torch.tensor([slot.setdefault(tuple(s), len(slot)) for s in sequences], dtype=torch.long)  # (N,) → unique id
    unique = list(slot)
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i]))  # stable: ties keep input order
    device = next(model.parameters()).device
    out: Tensor | None = None
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if packing:
                values = model.forward_packed(pack([unique[i] for i in idx]).to(device))  # (b, n_out)
            else:
                ids, mask = pad([unique[i] for i in idx], pad_id, padding_side)  # (b, T)
                values = model(ids.to(device), mask.to(device))  # (b, n_out)
            values = (values if all_outputs else model.reward(values)).float().cpu()
            if out is None:
                out = torch.empty((len(unique), *values.shape[1:]), dtype=torch.float32)
            out[idx] = values
            if progress is not None:
                progress(len(idx))
    finally:
        model.train(was_training)
    if progress is not None and len(sequences) > len(unique):
        progress(len(sequences) - len(unique))  # duplicates cost nothing
    if out is None:
        raise ValueError("score_sequences: no sequences to score")
    return out[index]


def score_encoded(model: RewardModel, encoded: EncodedPairs, pad_id: int, batch_size: int = 16, padding_side: PaddingSide = "right", progress: Progress | None = None) -> PairScores:
    """Score already-tokenised pairs; chosen and rejected sequences share the length-sorted batches."""
    n = len(encoded.chosen)
    rewards = score_sequences(model, encoded.chosen + encoded.rejected, pad_id, batch_size, padding_side, progress)
    flags = [torch.tensor(f, dtype=torch.bool).reshape(n) for f in (encoded.truncated, encoded.identical)]
    return PairScores(rewards[:n], rewards[n:], *flags)


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's pad id, 0 when it has none (rewards never read the pad id, only the attention mask)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def score_pairs(
    model: RewardModel, tokenizer: Any, template: TemplateSpec, max_length: int, pairs: Sequence[BenchPair],
    batch_size: int = 16, padding_side: PaddingSide = "right", progress: Progress | None = None,
) -> PairScores:
    """Render each response with `template`, tokenise under "truncate" at `max_length`, and score both responses.

    Args:
        model: the reward model (any device; its mode is restored afterwards).
        tokenizer: the model's Hugging Face tokenizer.
        template: the template the model was trained with.
        max_length: token limit per sequence (prompt + response + template).
        pairs: the comparisons to score.
        batch_size: sequences per forward pass; results do not depend on it.
        padding_side: "right" or "left"; results do not depend on it.
        progress: called after each pair is encoded and after each batch of sequences is scored.
    """
    encoded = encode_pairs(Encoder(tokenizer, template, max_length), pairs, progress)
    return score_encoded(model, encoded, pad_id_of(tokenizer), batch_size, padding_side, progress)


@dataclass(frozen=True)
class EvalSettings:
    """How a checkpoint renders text: its template and max_length, and the file they were read from."""

    template: TemplateSpec
    max_length: int
    source: str


def settings_from_config(config: dict[str, Any], source: str) -> EvalSettings:
    """Template and max_length from a resolved LightningCLI config (`data.init_args.*`); data-module defaults otherwise."""
    data = config.get("data") or {}
    init = data.get("init_args", data) or {}
    spec = init.get("template") or {}
    default = TemplateSpec()
    system = spec.get("system")
    template = TemplateSpec(name=spec.get("name", default.name), system=system if isinstance(system, str) else default.system)
    if template.name not in ("steerlm", "chat"):
        raise ValueError(f"{source}: data.init_args.template.name is {template.name!r}; expected 'steerlm' or 'chat'")
    max_length = init.get("max_length") or DEFAULT_MAX_LENGTH
    return EvalSettings(template, int(max_length), source)


def read_eval_settings(checkpoint: str | Path) -> EvalSettings:
    """Settings from `<checkpoint>/config.yaml` (every command that writes a checkpoint or export writes one).

    A reward model without it is refused rather than scored with guessed defaults (another template or max_length
    gives other rewards)."""
    directory = Path(checkpoint)
    directory = directory if directory.is_dir() else directory.parent
    candidate = directory / "config.yaml"
    if not candidate.is_file():
        raise FileNotFoundError(f"{directory}: no config.yaml, so the template and max_length the reward model was trained "
                                "with are unknown; copy the training run's config.yaml next to its weights")
    return settings_from_config(yaml.safe_load(candidate.read_text()) or {}, str(candidate))
