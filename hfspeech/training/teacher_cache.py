"""A teacher's logits for every training clip, computed once and kept on disk (Arrow) for distillation.

The teacher (any saved audio classifier: a fine-tuned Whisper, Wav2Vec2, AST, or an hfspeech baseline) runs
once over the un-augmented training clips, centre-cropped to its own window as in evaluation. The logits are
saved with `datasets` under a key made of the teacher's files and the split's fingerprint, so a second
student, a second seed or a resumed run reads them back instead of running the teacher again: distilling
then costs about what training the student costs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import soxr
import torch
from datasets import Dataset, load_from_disk
from tqdm.auto import tqdm
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.data.transforms import crop
from hfspeech.errors import UsageError
from hfspeech.models import register
from hfspeech.models.inputs import extract_features
from hfspeech.models.loading import pretrained_errors

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "hfspeech", "teacher_logits")
LOGITS_COLUMN = "teacher_logits"


def cache_key(teacher_dir: str, split: Dataset, label_names: Sequence[str]) -> str:
    """Changes when the teacher's weights or config, the clips, or the student's label order change."""
    digest = hashlib.sha256(json.dumps([split._fingerprint, list(label_names)]).encode())
    for name in sorted(os.listdir(teacher_dir)):
        path = os.path.join(teacher_dir, name)
        if os.path.isfile(path) and name.endswith((".json", ".safetensors", ".bin")):
            stat = os.stat(path)
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def teacher_logits(teacher_dir: str, split: Dataset, sampling_rate: int, label_names: Sequence[str],
                   cache_dir: Optional[str] = None, batch_size: int = 32) -> np.ndarray:
    """``[clips, num_labels]`` float32 logits of the teacher on the prepared ``split`` (``input_values`` at
    ``sampling_rate``), columns in the student's label order; read from the cache when it has them."""
    if not os.path.isdir(teacher_dir):
        raise UsageError(f"--teacher {teacher_dir}: not a model folder")
    folder = Path(cache_dir or DEFAULT_CACHE_DIR) / cache_key(teacher_dir, split, label_names)
    if (folder / "dataset_info.json").is_file():
        logger.info("teacher logits from the cache: %s", folder)
        return np.asarray(load_from_disk(str(folder))[LOGITS_COLUMN], dtype=np.float32)
    logits = compute_teacher_logits(teacher_dir, split, sampling_rate, label_names, batch_size)
    Dataset.from_dict({LOGITS_COLUMN: logits}).save_to_disk(str(folder))
    logger.info("teacher logits of %d clips cached in %s", len(logits), folder)
    return logits


def compute_teacher_logits(teacher_dir: str, split: Dataset, sampling_rate: int, label_names: Sequence[str],
                           batch_size: int = 32) -> np.ndarray:
    register()
    with pretrained_errors(teacher_dir):
        model = AutoModelForAudioClassification.from_pretrained(teacher_dir).eval()
        extractor = AutoFeatureExtractor.from_pretrained(teacher_dir)
    columns = label_columns(model.config, label_names, teacher_dir)
    rate = int(extractor.sampling_rate)
    window = getattr(model.config, "max_length_seconds", None)
    max_samples = int(round(window * rate)) if window else None
    clips = split.with_format("numpy", columns=["input_values"])
    out = []
    for start in tqdm(range(0, len(split), batch_size), desc="teacher logits", unit="batch"):
        batch = [_at_rate(np.asarray(c, dtype=np.float32), sampling_rate, rate)
                 for c in clips[start : start + batch_size]["input_values"]]
        inputs = extract_features(extractor, [crop(c, max_samples) for c in batch])
        with torch.no_grad():
            out.append(model(**inputs).logits.float().numpy()[:, columns])
    return np.concatenate(out).astype(np.float32)


def _at_rate(clip: np.ndarray, rate: int, target: int) -> np.ndarray:
    return clip if rate == target else soxr.resample(clip, rate, target).astype(np.float32)


def label_columns(config: Any, label_names: Sequence[str], teacher_dir: str) -> list[int]:
    """The teacher's logit column of each student label; a clear error when the label sets differ."""
    teacher_ids = {str(name): int(i) for i, name in config.id2label.items()}
    missing = [name for name in label_names if name not in teacher_ids]
    if missing or len(teacher_ids) != len(label_names):
        raise UsageError(f"--teacher {teacher_dir}: its labels {sorted(teacher_ids)} are not the data's "
                         f"{sorted(label_names)}")
    return [teacher_ids[name] for name in label_names]


class TeacherLogitSplit(torch.utils.data.Dataset):
    """The training view (`data.transforms.TransformedSplit`) with each row's teacher logits added."""

    def __init__(self, view, logits: np.ndarray):
        if len(view) != len(logits):
            raise ValueError(f"{len(logits)} teacher logits for {len(view)} training clips")
        self.view, self.logits = view, logits

    def __len__(self) -> int:
        return len(self.view)

    def __getitems__(self, indices):
        rows = self.view.__getitems__(indices)
        return [{**row, LOGITS_COLUMN: self.logits[i]} for row, i in zip(rows, indices)]

    def __getitem__(self, index: int):
        return self.__getitems__([int(index)])[0]


class TeacherLogitCollator:
    """The run's collator, plus a ``teacher_logits`` tensor when the examples carry them (training batches)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict:
        logits = [example.pop(LOGITS_COLUMN) for example in examples if LOGITS_COLUMN in example]
        batch = self.collator(examples)
        if logits:
            batch[LOGITS_COLUMN] = torch.from_numpy(np.stack(logits))
        return batch
