"""The report PNGs of a model with many classes (speaker ID) stay a readable size and cheap to draw."""

import numpy as np
from PIL import Image

from hfspeech.evaluation.report import write_evaluation_report, write_multilabel_report

MANY = 120  # speakers: drawn at full size, 0.55 inch a class, this was an 8,000-pixel square (15 GB at 300)


def test_a_confusion_matrix_of_many_classes_stays_a_screenful(tmp_path):
    rng = np.random.default_rng(0)
    references = np.repeat(np.arange(MANY), 3)
    predictions = np.where(rng.random(len(references)) < 0.8, references, rng.integers(0, MANY, len(references)))
    names = [f"speaker_{i:04d}" for i in range(MANY)]
    metrics = write_evaluation_report(str(tmp_path), predictions, references, names)
    width, height = Image.open(tmp_path / "test_confusion_matrix.png").size
    assert max(width, height) <= 2400 and metrics["accuracy"] > 0.7


def test_a_per_class_chart_of_many_labels_stays_a_screenful(tmp_path):
    rng = np.random.default_rng(0)
    references = (rng.random((4 * MANY, MANY)) < 0.05).astype(np.int64)
    scores = np.clip(references * 0.6 + rng.random(references.shape) * 0.5, 0, 1)
    write_multilabel_report(str(tmp_path), scores, references, [f"event_{i}" for i in range(MANY)], [0.5] * MANY)
    width, _ = Image.open(tmp_path / "test_per_class_ap.png").size
    assert width <= 2400
