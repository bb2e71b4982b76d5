"""Prompts for online policy training: unique prompts, rendered up to the assistant turn, left-padded.

Sources: HelpSteer2-Preference (a local file or the hub's `nvidia/HelpSteer2`, data_dir="preference", one `split`),
any JSONL/Parquet with a "prompt" field, e.g. the shipped hh-rlhf harmless prompts (data/hh-rlhf), conversational
`messages` rows, or pairs in any format of `rlhf.data.formats` (hh-rlhf transcripts, TRL standard or conversational:
the prompt part, `rlhf.data.formats.prompt_source` says which and why). Prompts are de-duplicated in file order. `render_prompt` renders with the policy's template (SteerLM or the tokenizer's chat
template) and cuts at the start of the assistant's text, so the policy continues the assistant turn. Prompts longer
than `max_prompt_length` tokens are dropped or cut from the left on whole turns (`turn_safe_cut`: the oldest turns
go first, only the last user turn is cut by characters, template kept); both are counted and logged. The order is a
pure function of (seed, epoch), sharded over the data-parallel ranks, and resume checkpoints store how far an epoch got
(`rlhf.training.resume`). Left out: multi-turn rollouts and prompt weighting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from rlhf.data.collate import pad
from rlhf.data.encode import _smallest_fitting
from rlhf.data.formats import prompt_source, row_prompt
from rlhf.data.helpsteer2 import DEFAULT_REPO, hub_preference_rows
from rlhf.data.rows import BadRowError, Row, read_rows
from rlhf.data.templates import TemplateSpec, render_prompt, turn_safe_cut
from rlhf.training.distributed import own_sampling
from rlhf.training.resume import ResumableDataPosition, resumed_sampler
from rlhf.types import PromptBatch

PromptOverlength = Literal["drop", "truncate_left"]


@dataclass
class PromptStats:
    """What loading and encoding did to the prompts.

    Attributes:
        rows: rows read (of the requested split, when rows have a `split` field).
        source: where the prompts were found (a field or a pair format) and why.
        unique: distinct prompts among them.
        skipped_bad: rows without a usable "prompt" (only with on_bad_row="skip").
        truncated: prompts cut from the left to fit.
        dropped: prompts dropped as too long.
    """

    rows: int = 0
    source: str = ""
    unique: int = 0
    skipped_bad: int = 0
    truncated: int = 0
    dropped: int = 0

    def summary(self) -> str:
        return (f"{self.source}; {self.rows} rows, {self.unique} unique prompts, {self.skipped_bad} bad rows skipped; "
                f"over length: {self.truncated} truncated from the left, {self.dropped} dropped")


def unique_prompts(rows: Sequence[Row], split: str | None, stats: PromptStats, on_bad_row: Literal["error", "skip"] = "error") -> list[str]:
    """The distinct "prompt" values, in order; rows whose `split` field differs from `split` are ignored."""
    seen: dict[str, None] = {}
    source = prompt_source(rows)
    stats.source = source.describe()
    for row in rows:
        if split is not None and row.data.get("split", split) != split:
            continue
        stats.rows += 1
        try:
            seen.setdefault(row_prompt(row, source.name), None)
        except BadRowError:
            if on_bad_row == "error":
                raise
            stats.skipped_bad += 1
    stats.unique = len(seen)
    return list(seen)


class PromptEncoder:
    """Renders and tokenises prompts with one tokenizer, template and token limit.

    Args:
        tokenizer: the policy's Hugging Face tokenizer.
        template: the policy's template.
        max_prompt_length: token limit of a rendered prompt.
        overlength: "drop" or "truncate_left" (cut the raw prompt's characters from the left until it fits).
    """

    def __init__(self, tokenizer: Any, template: TemplateSpec, max_prompt_length: int, overlength: PromptOverlength):
        self.tokenizer, self.template, self.max_prompt_length, self.overlength = tokenizer, template, max_prompt_length, overlength
        self.add_special_tokens = template.name != "chat"  # a chat template writes BOS itself

    def ids(self, prompt: str) -> list[int]:
        text = render_prompt(self.template, prompt, self.tokenizer)
        return list(self.tokenizer(text, add_special_tokens=self.add_special_tokens, verbose=False)["input_ids"])

    def encode(self, prompt: str, stats: PromptStats) -> tuple[str, list[int]] | None:
        """(prompt text actually used, its token ids), or None when the prompt is dropped."""
        ids = self.ids(prompt)
        if len(ids) <= self.max_prompt_length:
            return prompt, ids
        cut = _smallest_fitting(lambda k: len(self.ids(prompt[turn_safe_cut(prompt, k):])) <= self.max_prompt_length, len(prompt) - 1)
        if self.overlength == "drop" or cut is None:
            stats.dropped += 1
            return None
        stats.truncated += 1
        kept = prompt[turn_safe_cut(prompt, cut):]
        return kept, self.ids(kept)


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt's raw text (after any truncation) and its rendered token ids."""

    text: str
    input_ids: list[int]


def collate_prompts(items: Sequence[EncodedPrompt], pad_id: int) -> PromptBatch:
    """Left-pad B prompts into a PromptBatch (generation appends to the right of every row)."""
    ids, mask = pad([it.input_ids for it in items], pad_id, "left")
    return PromptBatch(input_ids=ids, attention_mask=mask, prompts=tuple(it.text for it in items))


class PromptDataModule(ResumableDataPosition, LightningDataModule):
    """Unique prompts → left-padded `PromptBatch`es for REINFORCE.

    Args:
        path: local JSONL/Parquet with a "prompt" field, `messages`, or pairs in any format (hh-rlhf, TRL); ignored with hub_id.
        hub_id: load HelpSteer2-Preference prompts from this hub dataset (e.g. nvidia/HelpSteer2) instead.
        split: keep rows whose `split` field equals this ("train"/"val"); rows without the field are kept.
        tokenizer: the policy's tokenizer location; linked from model.backbone.name_or_path by the CLI.
        template: the policy's template; prompts are rendered up to the assistant turn.
        max_prompt_length: token limit of a rendered prompt.
        overlength: "drop" or "truncate_left" for longer prompts; the counts are logged.
        batch_size: prompts per training step (each is sampled K times).
        limit: use only the first N unique prompts (None: all).
        shuffle: reshuffle the prompts every epoch.
        on_bad_row: "error" stops at a row without a usable prompt; "skip" skips and counts them.
    """

    def __init__(self, path: str | None = None, hub_id: str | None = None, split: str | None = "train", tokenizer: str | None = None, template: TemplateSpec = TemplateSpec(), max_prompt_length: int = 1024, overlength: PromptOverlength = "drop", batch_size: int = 32, limit: int | None = None, shuffle: bool = True, on_bad_row: Literal["error", "skip"] = "error"):
        super().__init__()
        if (path is None) == (hub_id is None):
            raise ValueError("PromptDataModule: give exactly one of path and hub_id")
        self.path, self.hub_id, self.split, self.tokenizer_path = path, hub_id, split, tokenizer
        self.template, self.max_prompt_length, self.overlength = template, max_prompt_length, overlength
        self.batch_size, self.limit, self.shuffle, self.on_bad_row = batch_size, limit, shuffle, on_bad_row
        self.stats = PromptStats()
        self.items: list[EncodedPrompt] = []
        self.pad_id = 0

    def _rows(self) -> list[Row]:
        if self.hub_id is not None:
            return hub_preference_rows(self.split or "train", repo_id=self.hub_id or DEFAULT_REPO)
        return read_rows(Path(self.path))

    def setup(self, stage: str) -> None:
        if self.items:
            return
        if not self.tokenizer_path:
            raise ValueError("data.tokenizer is not set (it is normally linked from model.backbone.name_or_path)")
        from rlhf.models.backbone import load_tokenizer

        tokenizer = load_tokenizer(self.tokenizer_path)
        self.pad_id = tokenizer.pad_token_id
        self.stats = PromptStats()
        prompts = unique_prompts(self._rows(), self.split, self.stats, self.on_bad_row)[: self.limit]
        encoder = PromptEncoder(tokenizer, self.template, self.max_prompt_length, self.overlength)
        encoded = (encoder.encode(p, self.stats) for p in prompts)
        self.items = [EncodedPrompt(text, ids) for text, ids in filter(None, encoded)]
        rank_zero_info(f"[data] prompts from {self.hub_id or self.path}: {self.stats.summary()}; {len(self.items)} used")
        if not self.items:
            raise ValueError(f"PromptDataModule: no prompts left from {self.hub_id or self.path}")

    def train_dataloader(self) -> DataLoader:
        collate = partial(collate_prompts, pad_id=self.pad_id)
        rank, world = own_sampling(self.trainer, type(self).__name__)
        drop_last = -(-len(self.items) // world) >= self.batch_size  # of this rank's share
        self._sampler = resumed_sampler(len(self.items), self.shuffle, self.batch_size, torch.initial_seed(), self._position, drop_last, rank, world)
        generator = torch.Generator().manual_seed(0)  # a new iterator draws a worker seed: not from the global RNG
        return DataLoader(self.items, batch_size=self.batch_size, sampler=self._sampler, collate_fn=collate, drop_last=drop_last, generator=generator)
