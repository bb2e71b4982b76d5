"""Reward sources for online training: score (prompt, response) *texts*, so the RM may use another tokenizer.

`RewardSource` is the interface (an `nn.Module`, so Lightning moves a loaded RM with the policy). `RewardModelScore`
loads a frozen reward model of any format this repo writes (training checkpoint, adapter export, merged HF
`AutoModelForSequenceClassification` export; see `rlhf.reward.score.load_scorer`), re-renders each pair in the RM's OWN
template from its config.yaml and tokenises it with the RM's tokenizer under evaluation's "truncate" rule.
`CharFrequencyReward` is a programmatic reward for tests and demos. Weights load in `build()`, never at parse time.
`shard(mesh)` splits a loaded RM with FSDP2 next to a sharded policy; each rank then pads its scoring to the
largest number of forward passes of any rank, since every sharded forward is a collective.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from rlhf.data.encode import Encoder, EncodeStats


class RewardSource(nn.Module):
    """Scores decoded responses. Subclasses implement `score`; `build` loads weights (called once, idempotent).

    `score` must run any network in eval mode (no dropout) whatever the module's train flag: the trainer keeps the
    whole LightningModule, this source included, in train mode.
    """

    def build(self) -> None:
        """Load whatever the source needs; parsing a config must not load weights, so this is separate."""

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        """(N,) float32 rewards on the CPU for N raw prompts and decoded responses (no EOS token, no template)."""
        raise NotImplementedError

    def shard(self, mesh) -> None:
        """Shard any network over `mesh` (FSDP2) when the policy is sharded; sources without one ignore it."""


class CharFrequencyReward(RewardSource):
    """The fraction of the response's characters equal to `char` (0 for an empty response), in [0, 1].

    Args:
        char: the character to reward.
    """

    def __init__(self, char: str = "e"):
        super().__init__()
        if len(char) != 1:
            raise ValueError(f"CharFrequencyReward: char must be one character, got {char!r}")
        self.char = char

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        return torch.tensor([r.count(self.char) / max(len(r), 1) for r in responses], dtype=torch.float32)


class RewardModelScore(RewardSource):
    """A frozen reward model of this repo (checkpoint or export), scoring text in its own template.

    Args:
        path: a training checkpoint directory (model.safetensors + config.yaml), an adapter export or an HF export.
        batch_size: sequences per RM forward pass (rewards do not depend on it).
        packing: score each batch as one unpadded packed row (same rewards, no compute on padding).
    """

    def __init__(self, path: str, batch_size: int = 16, packing: bool = False):
        super().__init__()
        self.path, self.batch_size, self.packing = path, batch_size, packing
        self.model: nn.Module | None = None
        self.encoder: Encoder | None = None
        self.pad_id = 0
        self.truncated = 0  # sequences the "truncate" rule cut so far (a sign the RM's max_length is too short)
        self.sharded = False

    def build(self) -> None:
        if self.model is not None:
            return
        from rlhf.eval.score_pairs import pad_id_of
        from rlhf.reward.score import load_scorer

        model, tokenizer, settings, _ = load_scorer(self.path)
        self.model = model.requires_grad_(False).eval()
        self.encoder = Encoder(tokenizer, settings.template, settings.max_length)
        self.pad_id = pad_id_of(tokenizer)

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        """RM token ids of each pair: the RM's template and tokenizer, prompt cut from the left if too long."""
        if self.encoder is None:
            raise RuntimeError("RewardModelScore: call build() first")
        stats = EncodeStats()
        ids = [self.encoder.encode(p, [r], "truncate", stats) for p, r in zip(prompts, responses, strict=True)]
        self.truncated += stats.truncated
        return [x[0] for x in ids]  # type: ignore[index]  # "truncate" never drops

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        from rlhf.eval.score_pairs import score_sequences

        sequences = self.encode(prompts, responses)
        if self.sharded:
            self._match_forward_passes(len({tuple(x) for x in sequences}))
        return score_sequences(self.model, sequences, self.pad_id, self.batch_size, packing=self.packing)

    def shard(self, mesh) -> None:
        from rlhf.models.sharding import shard_model

        dtype = next(p for p in self.model.parameters() if p.is_floating_point()).dtype
        shard_model(self.model, mesh, dtype)
        self.sharded = True

    @torch.no_grad()
    def _match_forward_passes(self, unique: int) -> None:
        """Run as many 1-token forward passes as this rank has fewer batches than the busiest rank."""
        import torch.distributed as dist

        device = next(self.model.parameters()).device
        mine = -(-unique // self.batch_size)
        most = torch.tensor([mine], device=device)
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        ids, mask = torch.ones((1, 1), dtype=torch.long, device=device), torch.ones((1, 1), dtype=torch.bool, device=device)
        for _ in range(int(most) - mine):
            self.model(ids, mask)
