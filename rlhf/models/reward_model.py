"""RewardModel: a (LoRA-wrapped) Llama body, the hidden state at each row's last real token, a linear or mean-variance head.

Position ids are derived from `attention_mask` (cumsum − 1), so a left-padded row sees the same positions as the
same row right-padded and gets the same reward. Chosen and rejected responses are scored in one forward pass by
the caller stacking them. `forward_packed` scores N sequences packed into one unpadded row (`rlhf.models.packing`),
reading each sequence's own last token; it returns what `forward` returns for the same sequences padded.
"""

from __future__ import annotations

from torch import Tensor, nn

from rlhf.models.backbone import BackboneSpec, hidden_size, load_backbone
from rlhf.models.heads import HeadSpec, MeanVarHead, RewardHead, gather_last
from rlhf.models.packing import packed_hidden
from rlhf.types import PackedTokens


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """(B, T) mask → (B, T) long positions counting real tokens from 0; padding positions get 0."""
    mask = attention_mask.long()
    return (mask.cumsum(dim=1) - 1).clamp(min=0) * mask


class RewardModel(nn.Module):
    """Backbone hidden states → head at the last real token.

    Args:
        backbone: a Hugging Face base model (no LM head), possibly a peft model, returning `last_hidden_state`.
        head: the reward head.
        reward_slot: which head output is the scalar reward.
    """

    def __init__(self, backbone: nn.Module, head: RewardHead | MeanVarHead, reward_slot: int):
        super().__init__()
        if not 0 <= reward_slot < head.linear.out_features:
            raise ValueError(f"reward_slot {reward_slot} is outside the head's {head.linear.out_features} outputs")
        self.backbone = backbone
        self.head = head
        self.reward_slot = reward_slot

    def forward(self, input_ids: Tensor | PackedTokens, attention_mask: Tensor | None = None) -> Tensor:
        """(B, T) ids and bool mask, or B packed sequences (no mask) → (B, n_out) head outputs.

        Packed input goes through `forward` too, so wrappers that hook the forward (FSDP) see every call.
        """
        if isinstance(input_ids, PackedTokens):
            hidden = packed_hidden(self.backbone, input_ids)  # (1, T, H)
            return self._head(hidden[0, input_ids.last_index.to(hidden.device)])
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask.long(),
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        return self._head(gather_last(out.last_hidden_state, attention_mask))

    def forward_packed(self, tokens: PackedTokens) -> Tensor:
        """N packed sequences → (N, n_out) head outputs at each sequence's last token."""
        return self(tokens)

    def _head(self, pooled: Tensor) -> Tensor:
        if isinstance(self.head, MeanVarHead):
            return self.head.raw(pooled)  # (B, 2) [μ, z]; reward() is μ, sigma() is σ
        return self.head(pooled)

    def reward(self, outputs: Tensor) -> Tensor:
        """(B, n_out) head outputs → (B,) scalar rewards (μ for a mean-variance head)."""
        return outputs[:, self.reward_slot]

    def sigma(self, outputs: Tensor) -> Tensor:
        """(B, 2) outputs of a mean-variance head → (B,) σ."""
        if not has_sigma(self):
            raise TypeError("sigma() needs a mean-variance head (HeadSpec.kind='mean_var')")
        return self.head.sigma(outputs)


def has_sigma(model: nn.Module) -> bool:
    """Whether `model` (any scorer `rlhf.reward.score.load_scorer` returns) has a mean-variance head, i.e. gives σ."""
    return isinstance(getattr(model, "head", None), MeanVarHead)


def build_reward_model(backbone_spec: BackboneSpec, head_spec: HeadSpec) -> RewardModel:
    """Load the backbone (LoRA-wrapped) and attach a freshly initialised head."""
    backbone = load_backbone(backbone_spec)
    if head_spec.kind == "mean_var":
        mv = MeanVarHead(hidden_size(backbone), head_spec.init, learned_rho=head_spec.learned_rho)
        return RewardModel(backbone, mv, head_spec.resolved_slot())
    head = RewardHead(hidden_size(backbone), head_spec.n_out, head_spec.bias, head_spec.init)
    return RewardModel(backbone, head, head_spec.resolved_slot())


class ExportedRewardModel(nn.Module):
    """A Hugging Face sequence classifier (e.g. one written by `rlhf.reward.export`) behind RewardModel's interface.

    The score layer is applied at the last attended token found from `attention_mask` (not from the pad id), with
    mask-derived position ids, so it pools exactly like `RewardModel`.

    Args:
        classifier: an `AutoModelForSequenceClassification` model with a `score` layer.
        reward_slot: which output is the scalar reward.
    """

    def __init__(self, classifier: nn.Module, reward_slot: int):
        super().__init__()
        self.classifier, self.reward_slot = classifier, reward_slot

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        body = getattr(self.classifier, self.classifier.base_model_prefix)
        out = body(input_ids=input_ids, attention_mask=attention_mask.long(), position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        return self.classifier.score(gather_last(out.last_hidden_state, attention_mask))

    def forward_packed(self, tokens: PackedTokens) -> Tensor:
        """N packed sequences → (N, n_out) scores at each sequence's last token."""
        hidden = packed_hidden(getattr(self.classifier, self.classifier.base_model_prefix), tokens)
        return self.classifier.score(hidden[0, tokens.last_index.to(hidden.device)])

    def reward(self, outputs: Tensor) -> Tensor:
        return outputs[:, self.reward_slot]
