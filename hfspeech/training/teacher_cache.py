"""A teacher's logits for every training clip, computed once and kept on disk (Arrow) for distillation.

The teacher (any saved audio classifier: a fine-tuned Whisper, Wav2Vec2, AST, or an hfspeech baseline) runs
once over the un-augmented training clips, centre-cropped to its own window as in evaluation. The logits are
saved with `datasets` under a key made of the teacher's files and the split's fingerprint, so a second
student, a second seed or a resumed run reads them back instead of running the teacher again: distilling
then costs about what training the student costs. A distillation killed while saving leaves a scratch folder beside
the cache (`data.whole_folders`); every run that uses the cache removes those no live run holds
(`remove_killed_saves`), whichever key they were saving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from datasets import Dataset, load_from_disk
from tqdm.auto import tqdm

from hfspeech.cache_folders import teacher_logits_cache
from hfspeech.data.columns import column_values
from hfspeech.data.progress_bars import progress_wanted
from hfspeech.data.whole_folders import remove_dead_runs_old_leftovers, save_whole
from hfspeech.errors import UsageError
from hfspeech.output_folders import remove_leftover_scratch
from hfspeech.training.live_teacher import LiveTeacher

logger = logging.getLogger(__name__)

LOGITS_COLUMN = "teacher_logits"
# In the key: 2 since teachers that read the padding score each crop as alone (`training.live_teacher`, session 33):
# the logits cached before were of mixed-length batches, and were read back.
TEACHER_LOGITS_FORMAT = 2
KEY_CHARS = 24  # of `cache_key`'s hex digest: a cache folder's name
# What a save killed outright leaves beside a cache folder: `locked_scratch`'s `.KEY-partial-*`, or the earlier
# `.KEY.partial-PID` / `.KEY.old-PID` (`whole_folders.remove_dead_runs_old_leftovers`)
KILLED_SAVE = re.compile(rf"\.([0-9a-f]{{{KEY_CHARS}}})(?:-partial-[a-z0-9_]{{8}}|\.(?:partial|old)-\d+)")


def cache_key(teacher_dir: str, split: Dataset, label_names: Sequence[str]) -> str:
    """Changes when the teacher's weights or config, the clips, or the student's label order change. The
    teacher's files are keyed by size, mtime and ctime (not read): ctime because a teacher copied in with
    `cp -p` keeps its old mtime. The clips by the prepared split's fingerprint, which `data.decode_retry` makes of
    each audio file's size, mtime and ctime, its bytes, and the decoder's code."""
    digest = hashlib.sha256(json.dumps([TEACHER_LOGITS_FORMAT, split._fingerprint, list(label_names)]).encode())
    for name in sorted(os.listdir(teacher_dir)):
        path = os.path.join(teacher_dir, name)
        if os.path.isfile(path) and name.endswith((".json", ".safetensors", ".bin")):
            stat = os.stat(path)
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}".encode())
    return digest.hexdigest()[:KEY_CHARS]


def teacher_logits(teacher_dir: str, split: Dataset, sampling_rate: int, label_names: Sequence[str],
                   cache_dir: Optional[str] = None, batch_size: int = 32,
                   device: Optional[torch.device] = None, progress: Optional[bool] = None) -> np.ndarray:
    """``[clips, num_labels]`` float32 logits of the teacher on the prepared ``split`` (``input_values`` at
    ``sampling_rate``), columns in the student's label order; read from the cache (`cache_dir`, else
    `cache_folders.teacher_logits_cache`: worked out here, not at import) when it has them, else
    computed on `device` (the run's; None: the CPU), with a bar when `progress` (the run's `not disable_tqdm`;
    None: when stderr is a terminal, `data.progress_bars`)."""
    if not os.path.isdir(teacher_dir):
        raise UsageError(f"--teacher {teacher_dir}: not a model folder")
    folder = Path(cache_dir or teacher_logits_cache()) / cache_key(teacher_dir, split, label_names)
    looked_at = time.time()  # a cache another run saves while this one computes is kept (`save_whole`)
    remove_killed_saves(folder.parent)
    cached = _cached_logits(folder, len(split))
    if cached is not None:
        return cached
    logits = compute_teacher_logits(teacher_dir, split, sampling_rate, label_names, batch_size, device, progress)
    _save_logits(folder, logits, looked_at)
    return logits


def remove_killed_saves(cache: Path) -> None:
    """Remove the scratch folders (`KILLED_SAVE`) that distillations killed outright while saving left in `cache`,
    where no live run holds them (a live save's is locked: kept). Only `save_whole` swept them, that is only the next
    run that computed the same key's logits: one that found them cached (saved meanwhile by a run beside the killed
    one), or that had other clips or another teacher, left them for good (each up to the whole logits: 4 bytes a clip
    and class)."""
    try:
        names = os.listdir(cache)
    except OSError:  # no cache yet, or none to be read
        return
    for key in sorted({found.group(1) for name in names if (found := KILLED_SAVE.fullmatch(name))}):
        remove_leftover_scratch(cache / key)
        remove_dead_runs_old_leftovers(cache / key)


def _cached_logits(folder: Path, num_clips: int) -> Optional[np.ndarray]:
    """The cached logits, or None when there are none or they cannot be used (unreadable, other length): a
    cache is a copy, so a damaged one is computed again rather than stopping the run or training on it."""
    if not folder.is_dir():
        return None
    try:
        logits = np.asarray(column_values(load_from_disk(str(folder)), LOGITS_COLUMN), dtype=np.float32)
    except Exception as error:  # datasets' and Arrow's errors on a damaged folder are of many kinds
        logger.warning("%s: teacher logits cache cannot be read (%s: %s); computing them again", folder,
                       type(error).__name__, (str(error).splitlines() or [""])[0])
        return None
    if logits.ndim != 2 or len(logits) != num_clips:
        logger.warning("%s: teacher logits cache holds %s logits for %d clips; computing them again", folder,
                       "x".join(map(str, logits.shape)), num_clips)
        return None
    logger.info("teacher logits from the cache: %s", folder)
    return logits


def _save_logits(folder: Path, logits: np.ndarray, looked_at: Optional[float] = None) -> None:
    """Saved whole (`data.whole_folders`): a run killed (or a disk filled) while saving leaves no folder that a
    later run would read as a cache. A cache that cannot be written is a warning: the run has its logits."""
    try:
        save_whole(Dataset.from_dict({LOGITS_COLUMN: logits}), folder, looked_at)
    except OSError as error:
        logger.warning("%s: teacher logits not cached (%s); the next run computes them again (--teacher_cache_dir "
                       "names a folder it can write)", folder, error.strerror or error)
        return
    logger.info("teacher logits of %d clips cached in %s", len(logits), folder)


def compute_teacher_logits(teacher_dir: str, split: Dataset, sampling_rate: int, label_names: Sequence[str],
                           batch_size: int = 32, device: Optional[torch.device] = None,
                           progress: Optional[bool] = None) -> np.ndarray:
    """The teacher run over `split`; its bar drawn when `progress` (None: when stderr is a terminal): in a log
    each redraw of the bar was a line."""
    teacher = LiveTeacher(teacher_dir, label_names, sampling_rate)
    clips = split.with_format("numpy", columns=["input_values"])
    hidden = not progress_wanted(progress)
    out = [teacher.logits_of(clips[start : start + batch_size]["input_values"], device).cpu().numpy()
           for start in tqdm(range(0, len(split), batch_size), desc="teacher logits", unit="batch", disable=hidden)]
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
