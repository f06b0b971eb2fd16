"""Frozen-feature cache: with the base model frozen, encode every clip once and train only the head.

The SUPERB protocol for probing a pretrained encoder, and the fast way to train any linear probe: with
`--freeze_base_model` the encoder's output for a clip is the same in every epoch, so
`cached_feature_views` runs it once per clip (centre crop, no augmentation) and stores what the head needs
(`hfspeech.models.frozen.encode_for_head`) as Arrow beside the decoded audio, with a fingerprint of the
encoder's weights, the feature extractor and the crop, so a second run with the same encoder reuses it. The file
is named after the decoded table its clips are read from (`data.decoded_caches.derived_cache_file`), and goes when
that decoding is superseded; features of the same clips and encoder made by other library versions go once unused
for a week (`_supersede_earlier_features`).
`CachedHeadModel` then trains the head from those features; its logits equal the whole model's
(`tests/test_feature_cache.py`), and the whole model is what gets saved.

Limits: no waveform augmentation and no SpecAugment (the features were computed once, without them);
random crops become the evaluation's centre crop; not with `--streaming` (the stream is never stored).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import transformers
from datasets import Dataset, DatasetDict
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.cache_users import cached_files, hold_cache_folder, is_users_folder, own_temporary_files_removed
from hfspeech.data.decoded_caches import UNUSED_DECODER_DAYS, derived_cache_file, superseded_removed
from hfspeech.data.transforms import EvalTransform, python_label, stack_labels
from hfspeech.errors import writing_to
from hfspeech.models.frozen import base_module_name, encode_for_head, family, head_logits
from hfspeech.models.inputs import batch_indices, extract_features, min_samples, padded_to, shares_padded_batches
from hfspeech.models.losses import classification_loss

logger = logging.getLogger("hfspeech.train")
FEATURE_FAMILIES = "hfspeech-feature-families"  # under the datasets cache: `<family>.json`, its features by version
IN_MEMORY_BYTES = 512 * 2**20
# What `encode_for_head` computes, by version: bump it when that changes (another pooling, another layer), so a
# cache of the old features is not reused for a model that would now compute others. The library versions go in
# the fingerprint too: an encoder's forward can change with them (attention kernels, defaults).
FEATURES_FORMAT = 4  # 2: a group-norm Wav2Vec2's clips normalised alone (`models.inputs`); clips under a frame padded
# 3: clips of a model that reads padding (group norm, Data2VecAudio, the Conformer) encoded by equal length; 4: also a
# group-norm model whose extractor returns a mask, and SEW / SEW-D whose extractor returns one


def can_cache(model: nn.Module) -> bool:
    return family(model) is not None


def encoder_fingerprint(model: nn.Module, feature_extractor: Any, max_samples: Optional[int]) -> str:
    """Changes whenever the cached features would: the base's weights and config, the front end, the crop."""
    return _encoder_keys(model, feature_extractor, max_samples)[1]


def _encoder_keys(model: nn.Module, feature_extractor: Any, max_samples: Optional[int]) -> tuple[str, str]:
    """(the encoder without the versions: its features' family, `encoder_fingerprint`), its weights read once."""
    digest = hashlib.sha1()
    base = getattr(model, base_module_name(model))
    for name, tensor in base.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    config = model.config.to_dict()
    for key in ("id2label", "label2id", "num_labels", "problem_type", "label_thresholds", "max_length_seconds"):
        config.pop(key, None)
    digest.update(repr(sorted(config.items())).encode())
    digest.update(feature_extractor.to_json_string().encode())
    digest.update(str(max_samples).encode())
    identity = digest.copy().hexdigest()[:16]
    digest.update(_features_versions().encode())
    return identity, digest.hexdigest()[:16]


def _features_versions() -> str:
    """What, besides the encoder, makes its features: `FEATURES_FORMAT` and the library versions."""
    return f"format {FEATURES_FORMAT} torch {torch.__version__} transformers {transformers.__version__}"


def _supersede_earlier_features(split: Dataset, identity: str, features_file: str, name: str) -> int:
    """`features_file` recorded as used now in its family (the split it was computed from and the encoder's
    `identity`: the same decoding, weights, config, front end and crop), and the family's features made by another
    `_features_versions` (a torch or transformers upgrade, a `FEATURES_FORMAT` bump: nothing this version reads
    again) removed once no run has used them for `UNUSED_DECODER_DAYS`, where no other live run holds their folder
    (`data.decoded_caches.superseded_removed`, the decodings' policy: two versions used in turn keep theirs). Another
    encoder probed on the same clips is another family, and stays. The files removed."""
    from datasets.fingerprint import Hasher

    use = {"decoder": _features_versions(), "content": "", "used": time.time()}
    family = Hasher.hash([split._fingerprint, identity])
    removed, freed = superseded_removed(FEATURE_FAMILIES, family, features_file, use, cached_files)
    if removed:
        logger.warning("train: removed %d file(s) (%.1f MB) of frozen features of the %s split made by another "
                       "hfspeech, torch or transformers version, unused for %d days", removed, freed / 2**20, name,
                       UNUSED_DECODER_DAYS)
    return removed


def _renamed_from_old_name(folder: Optional[Path], new_fingerprint: str, features_file: Optional[str]):
    """`features_file`, where the features an earlier hfspeech cached under datasets' own name for them
    (`cache-<new_fingerprint>.arrow` in `folder`: the same encoder, split, content and fingerprint) were renamed to it
    (`derived_cache_file`) when it was not there yet: each was encoded again once, and the old file stayed for good.
    Where the folder cannot be written (a team's read-only cache), the old file itself, read as it was; never an
    error. Not in a folder the user saved."""
    if folder is None or features_file is None or cached_files(features_file) or is_users_folder(folder):
        return features_file
    old = folder / f"cache-{new_fingerprint}.arrow"
    try:
        if not old.is_file():
            return features_file
        os.replace(old, features_file)
    except OSError:  # a read-only cache, or gone meanwhile: read where it is (or encoded, as before)
        return str(old) if old.is_file() else features_file
    logger.info("train: frozen features cached by an earlier hfspeech renamed to %s", features_file)
    return features_file


def _encode_batch(model: nn.Module, feature_extractor: Any, crop: EvalTransform, device: torch.device):
    """Encodes a `map` batch as `predict` runs it: clips of mixed lengths together only where the model ignores the
    padding (`models.inputs.shares_padded_batches`), else by equal length, or a clip's features depended on which
    clips shared its batch (a group-norm SEW or wav2vec2-base, Data2VecAudio, the Conformer)."""
    shortest = min_samples(model.config)
    mixed = shares_padded_batches(model.config, feature_extractor)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        clips = crop({"input_values": batch["input_values"], "label": batch["label"]})["input_values"]
        clips = [padded_to(clip, shortest) for clip in clips]  # as predict hears a clip under one encoder frame
        features: list = [None] * len(clips)
        for indices in batch_indices([len(clip) for clip in clips], len(clips), mixed):
            group = extract_features(feature_extractor, [clips[i] for i in indices])
            encoded = encode_for_head(model, {k: v.to(device) for k, v in group.items()})
            for index, row in zip(indices, encoded):
                features[index] = row
        return {"features": features}
    return encode


def cached_feature_views(model: nn.Module, feature_extractor: Any, dataset: DatasetDict, sampling_rate: int,
                         max_length_seconds: Optional[float], batch_size: int = 32,
                         device: Optional[torch.device] = None) -> dict[str, "FeatureSplit"]:
    """Every split's head features (computed once, cached as Arrow), as views the Trainer reads. `device`: where
    to encode (the run's, `training_args.device`): this runs before the Trainer moves the model to a GPU, so the
    model's own device was the CPU, and a frozen Whisper or XLS-R encoded the whole data set there."""
    max_samples = seconds_to_samples(max_length_seconds, sampling_rate) if max_length_seconds else None
    identity, fingerprint = _encoder_keys(model, feature_extractor, max_samples)
    device = device if device is not None else next(model.parameters()).device
    model.to(device)
    was_training = model.training
    model.eval()
    encode = _encode_batch(model, feature_extractor, EvalTransform(max_samples), device)
    views = {}
    for name, split in dataset.items():
        folder = Path(split.cache_files[0]["filename"]).parent if split.cache_files else None  # where map writes
        if folder is not None:  # a killed run's `tmp*` file there removed, this run's kept from others
            hold_cache_folder(folder)
        features_file = _renamed_from_old_name(  # removed with the decoding
            folder, f"{split._fingerprint}-frozen-{fingerprint}",
            derived_cache_file(split, f"{split._fingerprint}-{fingerprint}"))
        with writing_to(folder, "the frozen features were not cached; make room, or set HF_DATASETS_CACHE to a "
                        "folder on another disk"), own_temporary_files_removed(folder):
            features = split.with_format("numpy", columns=["input_values", "label"]).map(
                encode, batched=True, batch_size=batch_size, remove_columns=["input_values"],
                cache_file_name=features_file, new_fingerprint=f"{split._fingerprint}-frozen-{fingerprint}",
                desc=f"encoding {name} once (frozen base)").with_format(None)
        if features_file is not None:
            _supersede_earlier_features(split, identity, features_file, name)
        views[name] = FeatureSplit(features.select_columns(["features", "label"]))
    model.train(was_training)
    logger.info("frozen base: head features cached for %s (fingerprint %s)", list(views), fingerprint)
    return views


class FeatureSplit(torch.utils.data.Dataset):
    """Cached features and labels: rows `{"features": float32 [n, hidden], "label": ...}`.

    Features are small by design (a pooled vector per layer), so a split under `IN_MEMORY_BYTES` is read
    from Arrow once and kept as numpy: every epoch then costs the head alone, not a nested-list decode.
    """

    def __init__(self, split: Dataset):
        self.split = split
        self._numpy = split.with_format("numpy")
        self._features = self._labels = None
        if split.data.nbytes <= IN_MEMORY_BYTES:
            self._features = [_as_matrix(row) for row in self._numpy["features"]]
            self._labels = [python_label(label) for label in self._numpy["label"]]

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        if self._features is not None:
            return [{"features": self._features[i], "label": self._labels[i]} for i in indices]
        rows = self._numpy[list(indices)]
        features = [_as_matrix(row) for row in rows["features"]]
        labels = [python_label(label) for label in rows["label"]]
        return [{"features": f, "label": label} for f, label in zip(features, labels)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([int(index)])[0]


def _as_matrix(row: Any) -> np.ndarray:
    """A stored `[n, hidden]` list of lists (numpy gives a 2-D array, or an array of rows when ragged)."""
    row = np.asarray(row)
    return (np.stack(list(row)) if row.dtype == object else row).astype(np.float32, copy=False)


class FeatureCollator:
    """Pads features to the longest `n` of the batch, with the frame mask the baselines' pooling needs."""

    def __init__(self, num_labels: Optional[int] = None):
        self.num_labels = num_labels

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(example["features"]) for example in examples]
        hidden = examples[0]["features"].shape[-1]
        features = torch.zeros(len(examples), max(lengths), hidden)
        for row, example in enumerate(examples):
            features[row, : lengths[row]] = torch.from_numpy(example["features"])
        mask = torch.arange(max(lengths)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
        labels = stack_labels([example["label"] for example in examples], self.num_labels)
        return {"features": features, "frame_mask": mask, "labels": labels}


class CachedHeadModel(nn.Module):
    """The whole model, run from cached features: only its head computes (and trains). `model` is the
    whole classifier, saved with `save_pretrained` at the end like any other run."""

    main_input_name = "features"
    _keys_to_ignore_on_save = None  # read by the Trainer after it reloads a checkpoint

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._base_prefix = f"model.{base_module_name(model)}."

    def state_dict(self, *args, **kwargs):
        """The head only: the frozen base never changes, so checkpoints (and the best-model reload, which
        the Trainer does non-strictly for a plain module) carry just what trains."""
        state = super().state_dict(*args, **kwargs)
        return type(state)((k, v) for k, v in state.items() if not k.startswith(self._base_prefix))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A head-only state dict (a checkpoint of this model): the base's keys are not missing."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith(self._base_prefix)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"head checkpoint mismatch: missing {missing}, unexpected {result.unexpected_keys}")
        return result._replace(missing_keys=missing)

    @property
    def config(self):
        return self.model.config

    @property
    def base_parameter_prefix(self) -> str:
        """Where the frozen base's parameters are: `training.optim` gives the rest the head's learning rate."""
        return self._base_prefix.rstrip(".")

    def forward(self, features: torch.Tensor, frame_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None) -> SequenceClassifierOutput:
        logits = head_logits(self.model, features, frame_mask)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
