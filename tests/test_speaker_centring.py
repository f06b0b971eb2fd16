"""benchmarks/speaker_centring.py: centring removes a speaker's constant logit offset, and says what it costs when
the clips it centres on are not balanced."""

from __future__ import annotations

import numpy as np

from benchmarks.speaker_centring import fold_scores, summary


def offset_speaker(num_classes: int = 4, per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a voice the model hears as class 0: the right class by 1, plus an offset of 1.5 on class 0."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), per_class)
    logits = rng.normal(0.0, 0.1, (len(labels), num_classes))
    logits[np.arange(len(labels)), labels] += 1.0
    logits[:, 0] += 1.5
    return logits, labels


def test_centring_on_balanced_clips_removes_the_offset_and_one_class_does_not():
    logits, labels = offset_speaker()
    scores = fold_scores(logits, labels, clips=[8], draws=5, seed=0)
    assert scores["raw"] == 0.25  # every clip heard as class 0
    assert scores["centred_all"] == 1.0
    assert scores["centred_one_digit"] < 0.9  # one class's mean carries that class's own logit away
    assert len(scores["centred_8"]) == 5 and max(scores["centred_8"]) > scores["raw"]


def test_summary_averages_folds_and_keeps_the_worst_draw():
    folds = {"a": {"raw": 0.5, "centred_2": [0.6, 0.8]}, "b": {"raw": 0.7, "centred_2": [1.0, 0.6]}}
    assert summary(folds) == {"raw": 0.6, "centred_2": {"mean": 0.75, "worst": 0.7}}
