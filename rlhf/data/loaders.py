"""`TokenizedDataModule`, the base of every data module (not used directly in configs), and `LoaderSpec`.

The base loads the tokenizer (linked from the model's backbone), encodes once in `setup` and logs the counts, and
builds the DataLoaders: padded or packed collation, token-budget micro-batches (`rlhf.data.token_budget`), a training
order that is a pure function of (seed, epoch) and resumes after the last trained batch (`rlhf.training.resume`),
sharded over ranks by the loaders themselves, and contiguous validation blocks per rank. Subclasses read, parse and
encode their splits. Left out: Lightning's distributed sampler (the CLI turns it off).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from rlhf.data.collate import PACKED_COLLATE, EncodedPair, EncodedRating, PaddingSide
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.templates import TemplateSpec
from rlhf.data.token_budget import budget_batches, collate_group
from rlhf.training.distributed import ShardSampler, own_sampling, validation_shard
from rlhf.training.resume import ResumableDataPosition, resumed_sampler


@dataclass(frozen=True)
class LoaderSpec:
    """DataLoader settings.

    Args:
        batch_size: training micro-batch size (pairs for preference data, responses for ratings).
        eval_batch_size: validation micro-batch size; None uses batch_size.
        shuffle: shuffle training examples each epoch.
        num_workers: DataLoader worker processes.
        padding_side: "right" or "left"; rewards do not depend on it.
        packing: concatenate each batch's sequences into one unpadded row with per-sequence position ids (no
            compute on padding; rewards unchanged). Preference and rating data only.
        token_budget: if set, micro-batches hold similar-length examples up to this many tokens (packed: Σ lengths;
            padded: rows × longest) and batch_size / eval_batch_size are ignored. Preference and rating data only.
    """

    batch_size: int = 8
    eval_batch_size: int | None = None
    shuffle: bool = True
    num_workers: int = 0
    padding_side: PaddingSide = "right"
    packing: bool = False
    token_budget: int | None = None


class TokenizedDataModule(ResumableDataPosition, LightningDataModule):
    """Shared base: tokenizer loading, encoding statistics and DataLoaders (not used directly in configs)."""

    batch_type: type  # the batch `collate` gives (its packed twin with loader.packing); modules check it once, at setup

    def __init__(self, tokenizer: str | None, template: TemplateSpec, max_length: int, overlength: Literal["drop", "truncate_prompt"], loader: LoaderSpec, on_bad_row: Literal["error", "skip"]):
        super().__init__()
        self.tokenizer_path, self.template, self.max_length = tokenizer, template, max_length
        self.overlength, self.loader, self.on_bad_row = overlength, loader, on_bad_row
        self.pad_id = 0
        self.stats: dict[str, EncodeStats] = {}
        self._train: list = []
        self._val: list[list] = []
        self._collate_fns: list = []

    def _encoder(self) -> Encoder:
        if not self.tokenizer_path:
            raise ValueError("data.tokenizer is not set (it is normally linked from model.backbone.name_or_path)")
        from rlhf.models.backbone import load_tokenizer

        tokenizer = load_tokenizer(self.tokenizer_path)
        self.pad_id = tokenizer.pad_token_id
        return Encoder(tokenizer, self.template, self.max_length)

    def _report(self, name: str, stats: EncodeStats, load_summary: str) -> None:
        self.stats[name] = stats
        rank_zero_info(f"[data] {name}: {load_summary}; {stats.summary('encoded')}")

    def _loader(self, items: list, collate, batch_size: int, shuffle: bool, train: bool = False) -> DataLoader:
        if not items:
            raise ValueError(f"{type(self).__name__}: no examples left to load (all dropped or the file is empty)")
        if self.loader.packing:
            if collate not in PACKED_COLLATE:
                raise ValueError(f"{type(self).__name__}: loader.packing is not supported for this data (preference and rating data only)")
            collate = PACKED_COLLATE[collate]
        fn = partial(collate, pad_id=self.pad_id, side=self.loader.padding_side)
        if self.loader.token_budget is not None:  # pre-formed micro-batches, read one at a time
            groups = budget_batches([_row_lengths(it) for it in items], self.loader.token_budget, self.loader.packing)
            items, batch_size, fn = [[items[i] for i in g] for g in groups], 1, partial(collate_group, fn)
        rank, world = own_sampling(self.trainer, type(self).__name__)
        if train:  # resumable order: a function of (seed, epoch), sharded over ranks, skipping what a resumed epoch trained on
            sampler = self._sampler = resumed_sampler(len(items), shuffle, batch_size, torch.initial_seed(), self._position, rank=rank, num_replicas=world)
        else:  # this rank's contiguous block (the whole set when sharded); the module gathers before computing metrics
            sampler = ShardSampler(len(items), *validation_shard(self.trainer))
        generator = torch.Generator().manual_seed(0)  # a new iterator draws a worker seed: not from the global RNG
        return DataLoader(items, batch_size=batch_size, sampler=sampler, collate_fn=fn, num_workers=self.loader.num_workers, generator=generator)

    def _load_split(self, encoder: Encoder, split: Literal["train", "val"]) -> list:
        """Read, parse, encode and report one split (subclasses)."""
        raise NotImplementedError

    def _extra_val(self, encoder: Encoder) -> None:
        """Add further validation sets after the main one (subclasses may)."""

    def setup(self, stage: str) -> None:
        if self._collate_fns and (self._train or stage != "fit"):
            return
        encoder = self._encoder()
        if stage == "fit":
            self._train = self._load_split(encoder, "train")
        self._val, self._collate_fns = [self._load_split(encoder, "val")], [self.collate]
        self._extra_val(encoder)

    def _policy(self, split: str) -> str:
        return self.overlength if split == "train" else "truncate"  # evaluation never drops

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._train, self._collate_fns[0], self.loader.batch_size, self.loader.shuffle, train=True)

    def val_dataloader(self) -> list[DataLoader] | DataLoader:
        size = self.loader.eval_batch_size or self.loader.batch_size
        loaders = [self._loader(v, fn, size, False) for v, fn in zip(self._val, self._collate_fns)]
        return loaders[0] if len(loaders) == 1 else loaders


def _row_lengths(item: object) -> list[int]:
    """Token lengths of the rows an example becomes: [chosen, rejected] for a pair, [response] for a rating."""
    if isinstance(item, EncodedPair):
        return [len(item.chosen_ids), len(item.rejected_ids)]
    if isinstance(item, EncodedRating):
        return [len(item.input_ids)]
    raise ValueError(f"loader.token_budget is not supported for {type(item).__name__} examples (preference and rating data only)")
