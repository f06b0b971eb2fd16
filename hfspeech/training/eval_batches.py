"""Evaluation and test batches of equal-length clips, for models whose logits read the padding.

The collator pads a batch to its longest clip. Models that cannot share padded batches
(`models.inputs.shares_padded_batches` false: data2vec-audio, wav2vec2-conformer, group-norm encoders) then score a
short clip otherwise than alone, so a run's eval_* / test_* metrics differed from `hfspeech evaluate`'s, which
batches such models by equal length (a tiny group-norm wav2vec2: logits 6 apart on a 0.2-s clip beside a 1-s one).
Their evaluation DataLoaders get the same batches (`batch_indices`, `mixed=False`); training batches and every other
model's loaders are left as transformers makes them.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from torch.utils.data import DataLoader
from transformers.trainer_utils import PredictionOutput

from hfspeech.data.columns import column_values
from hfspeech.data.transforms import EvalTransform, TransformedSplit
from hfspeech.models.inputs import batch_indices, shares_padded_batches


def evaluated_lengths(dataset) -> Optional[list[int]]:
    """Each clip's length as the evaluation transform yields it (centre-cropped to its `max_samples`), from the
    prepared split's `length` column; None for anything else (cached features, a stream), which keeps its loader."""
    if not isinstance(dataset, TransformedSplit) or not isinstance(dataset.transform, EvalTransform):
        return None
    if "length" not in dataset.split.column_names:
        return None
    longest = dataset.transform.max_samples
    return [min(int(n), longest or int(n)) for n in column_values(dataset.split, "length")]


def in_dataset_order(values: Any, order: list[int]) -> Any:
    """Rows gathered in batch order (`order`: the dataset index of each) put back in dataset order."""
    if isinstance(values, (tuple, list)):
        return type(values)(in_dataset_order(value, order) for value in values)
    if values is None or len(values) != len(order):
        return values
    restored = np.empty_like(values)
    restored[np.asarray(order)] = values
    return restored


class EqualLengthEvaluation:
    """Trainer mixin: equal-length evaluation and test batches for models that must not share padded batches.

    One process runs the equal-length batches, `predict` returning rows in dataset order as ever. Several run one
    clip a batch through the Trainer's own loader: accelerate shards and gathers only batches of one size alike on
    every process (its gather needs equal shapes; its repeated clips are dropped by a fixed batch size), and a
    batch of one is a clip alone."""

    def _equal_length_loader(self, dataset, description: str) -> Optional[DataLoader]:
        config = getattr(self.model, "config", None)
        lengths = evaluated_lengths(dataset)
        if config is None or lengths is None or shares_padded_batches(config, self.processing_class):
            return None
        if self.args.world_size > 1:
            return self._get_dataloader(dataset, description, batch_size=1, sampler_fn=self._get_eval_sampler)
        batches = list(batch_indices(lengths, self.args.eval_batch_size, mixed=False))
        self._batch_order = [index for batch in batches for index in batch]
        kept = getattr(self, "_equal_length_loaders", {})  # persistent workers: one pool per dataset, as transformers
        if self.args.dataloader_persistent_workers and id(dataset) in kept:  # keeps its own loaders (a new pool
            return kept[id(dataset)]  # at every evaluation left the old ones running until collected)
        workers = dict(prefetch_factor=self.args.dataloader_prefetch_factor) if self.args.dataloader_num_workers else {}
        loader = DataLoader(dataset, batch_sampler=batches,
                            collate_fn=self._get_collator_with_removed_columns(self.data_collator, description),
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory,
                            persistent_workers=self.args.dataloader_persistent_workers, **workers)
        prepared = self.accelerator.prepare(loader)
        if self.args.dataloader_persistent_workers:
            self._equal_length_loaders = {**kept, id(dataset): prepared}
        return prepared

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset  # (a name or a dict: not ours)
        loader = self._equal_length_loader(dataset, "Evaluation")
        return super().get_eval_dataloader(eval_dataset) if loader is None else loader

    def get_test_dataloader(self, test_dataset):
        loader = self._equal_length_loader(test_dataset, "test")
        return super().get_test_dataloader(test_dataset) if loader is None else loader

    def predict(self, *args, **kwargs) -> PredictionOutput:
        self._batch_order = None
        output = super().predict(*args, **kwargs)
        if self._batch_order is None:
            return output
        return PredictionOutput(in_dataset_order(output.predictions, self._batch_order),
                                in_dataset_order(output.label_ids, self._batch_order), output.metrics)
