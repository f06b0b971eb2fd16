"""Lists of class ids as a 0/1 matrix: the collator's multi-label targets and evaluation's references.

A module of its own, numpy only: `hfspeech evaluate` reads it without `data.transforms`, which imports torch (an
ONNX export is evaluated without torch and transformers, as it is predicted with)."""

from typing import Sequence

import numpy as np


def multi_hot(label_lists: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """[clips, num_labels] 0/1 matrix of lists of class ids (the collator's targets, label counts, references)."""
    target = np.zeros((len(label_lists), num_labels), dtype=np.int64)
    for row, ids in enumerate(label_lists):
        target[row, np.asarray(ids, dtype=np.int64)] = 1
    return target
