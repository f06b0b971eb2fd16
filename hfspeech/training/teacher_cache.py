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
from typing import Optional, Sequence

import numpy as np
import torch
from datasets import Dataset, load_from_disk
from tqdm.auto import tqdm

from hfspeech.errors import UsageError
from hfspeech.training.live_teacher import LiveTeacher

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "hfspeech", "teacher_logits")
LOGITS_COLUMN = "teacher_logits"


def cache_key(teacher_dir: str, split: Dataset, label_names: Sequence[str]) -> str:
    """Changes when the teacher's weights or config, the clips, or the student's label order change. The
    teacher's files are keyed by size, mtime and ctime (not read): ctime because a teacher copied in with
    `cp -p` keeps its old mtime. The clips by the split's fingerprint, which `data.loading` makes of each
    audio file's size, mtime and ctime."""
    digest = hashlib.sha256(json.dumps([split._fingerprint, list(label_names)]).encode())
    for name in sorted(os.listdir(teacher_dir)):
        path = os.path.join(teacher_dir, name)
        if os.path.isfile(path) and name.endswith((".json", ".safetensors", ".bin")):
            stat = os.stat(path)
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}".encode())
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
    teacher = LiveTeacher(teacher_dir, label_names, sampling_rate)
    clips = split.with_format("numpy", columns=["input_values"])
    out = [teacher.logits_of(clips[start : start + batch_size]["input_values"]).numpy()
           for start in tqdm(range(0, len(split), batch_size), desc="teacher logits", unit="batch")]
    return np.concatenate(out).astype(np.float32)


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
