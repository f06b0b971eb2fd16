"""Costs that grew faster than the data, or held all of it at once where a part would do (session 29's audit).

Each test checks the shape of the work, not a time: which slow step runs, and how much memory is held at the
peak (tracemalloc counts numpy's buffers), so that it does not depend on how loaded the machine is.
"""

from __future__ import annotations

import io
import tracemalloc

import evaluate
import numpy as np
import pytest
from datasets import Features

from hfspeech.evaluation import per_class_scores
from hfspeech.evaluation.metrics import ClassificationMetrics, MultiLabelMetrics
from hfspeech.evaluation.per_class_scores import ranking_scores


def _multi_label_inputs(clips: int = 300, classes: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = (rng.random((clips, classes)) < 0.1).astype(np.int64)
    scores = np.round(truth * 0.4 + rng.random((clips, classes)) * 0.6, 2)  # float64, with ties
    return scores, truth


def _count_encodings(monkeypatch) -> list:
    """Calls of datasets' `Features.encode_batch`: evaluate's per-value encoding of every prediction into Arrow."""
    calls = []
    original = Features.encode_batch

    def counted(self, batch, *args, **kwargs):
        calls.append(len(next(iter(batch.values()))))
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(Features, "encode_batch", counted)
    return calls


def test_whole_predictions_reach_the_metrics_without_evaluates_per_value_encoding(monkeypatch):
    """100,000 clips x 1,000 classes went through Arrow and came back as 10^8 Python floats; the numbers stay
    those of evaluate's own path (scores rounded to float32 as it stored them)."""
    scores, truth = _multi_label_inputs()
    predictions, references = np.array([0, 1, 2, 2, 1]), np.array([0, 1, 1, 2, 0])
    expected_multi = evaluate.Metric.compute(MultiLabelMetrics(), predictions=scores, references=truth)
    expected_single = evaluate.Metric.compute(ClassificationMetrics(), predictions=predictions, references=references,
                                              labels=[0, 1, 2, 3])
    calls = _count_encodings(monkeypatch)

    multi = MultiLabelMetrics().compute(predictions=scores, references=truth)
    single = ClassificationMetrics().compute(predictions=predictions, references=references, labels=[0, 1, 2, 3])

    assert calls == []
    assert multi == expected_multi and single == expected_single


def test_batches_added_before_compute_still_count(monkeypatch):
    metric = ClassificationMetrics()
    metric.add_batch(predictions=[0, 1], references=[0, 0])
    assert metric.compute(predictions=[1], references=[1])["accuracy"] == 2 / 3


def test_a_length_mismatch_is_still_a_value_error():
    try:
        ClassificationMetrics().compute(predictions=[0, 1], references=[0])
    except ValueError as error:
        assert "Mismatch in the number of predictions (2) and references (1)" in str(error)
    else:
        raise AssertionError("no error for 2 predictions and 1 reference")


def test_ranking_scores_hold_one_block_of_classes_at_a_time(monkeypatch):
    """Every step of the ranking made a [clips, classes] array: ten of them alive at once, 7 GB at 100,000 clips x
    1,000 classes. Scored a block of columns at a time, the peak is a fraction of the score matrix."""
    scores, truth = _multi_label_inputs(clips=2000, classes=60)
    whole = ranking_scores(truth, scores)
    monkeypatch.setattr(per_class_scores, "BLOCK_ELEMENTS", 2000 * 4, raising=False)  # 4 classes a block

    tracemalloc.start()
    try:
        blocked = ranking_scores(truth, scores)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < scores.nbytes, (peak, scores.nbytes)
    for ours, theirs in zip(blocked, whole):
        assert np.array_equal(np.isnan(ours), np.isnan(theirs))
        assert np.allclose(np.nan_to_num(ours), np.nan_to_num(theirs), rtol=0, atol=1e-12)


def _label_lists(clips: int, classes: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [sorted(set(rng.integers(0, classes, 3).tolist())) for _ in range(clips)]


def test_multi_label_counts_need_no_clips_by_classes_matrix():
    """Every multi-label run built a [clips, classes] int64 multi-hot matrix to log the clips per label: 800 MB at
    100,000 clips x 1,000 classes. Without --pos_weight_from_frequencies the peak is now that of the id lists."""
    from types import SimpleNamespace

    from hfspeech.training.multilabel import multilabel_pos_weight

    labels, classes = _label_lists(4000, 500), 500
    flags = SimpleNamespace(class_weighted_loss=False, oversample=False, pos_weight_from_frequencies=False,
                            max_pos_weight=100.0)
    tracemalloc.start()
    try:
        assert multilabel_pos_weight(flags, labels, [f"c{i}" for i in range(classes)]) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(labels) * classes, peak  # a byte per (clip, class): an eighth of the matrix


def test_clips_per_label_and_pos_weight_are_those_of_the_multi_hot_matrix():
    from types import SimpleNamespace

    from hfspeech.data.transforms import multi_hot
    from hfspeech.models.losses import pos_weight_from_frequencies
    from hfspeech.training.multilabel import clips_per_label, multilabel_pos_weight

    labels = _label_lists(300, 12) + [[], [4, 4]]  # a clip without labels, and one listing a label twice
    assert clips_per_label(labels, 12).tolist() == multi_hot(labels, 12).sum(axis=0).tolist()
    flags = SimpleNamespace(class_weighted_loss=False, oversample=False, pos_weight_from_frequencies=True,
                            max_pos_weight=5.0)
    expected = pos_weight_from_frequencies(multi_hot(labels, 12), 5.0)
    assert np.array_equal(multilabel_pos_weight(flags, labels, [str(i) for i in range(12)]), expected)


def _audio_split(paths: list[str]):
    from datasets import Audio, ClassLabel, Dataset

    return Dataset.from_dict({"audio": paths, "label": [0] * len(paths)}).cast_column(
        "audio", Audio(decode=False)).cast_column("label", ClassLabel(names=["a"]))


def test_clip_keys_resolve_each_folder_once(tmp_path, monkeypatch):
    """The split audit resolved every clip's path component by component (an `lstat` per folder on the way, twice
    per clip); the keys stay `os.path.realpath`'s, links to files and to folders included."""
    import os

    from hfspeech.data import split_audit

    deep = tmp_path / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    paths = []
    for i in range(60):
        (deep / f"{i}.wav").write_bytes(b"RIFF")
        paths.append(str(deep / f"{i}.wav"))
    (tmp_path / "linked").symlink_to(deep)  # a link to a folder, and a link to a file
    (tmp_path / "alias.wav").symlink_to(deep / "0.wav")
    paths += [str(tmp_path / "linked" / "1.wav"), str(tmp_path / "alias.wav"), f"{deep}/./2.wav", str(deep / "no.wav")]
    split = _audio_split(paths)
    calls = []
    original = os.lstat
    def counted(path, *rest, **kwargs):
        calls.append(path)
        return original(path, *rest, **kwargs)

    monkeypatch.setattr(os, "lstat", counted)

    keys = split_audit._clip_keys(split)

    monkeypatch.setattr(os, "lstat", original)
    assert keys == [os.path.realpath(path) for path in paths]
    assert len(calls) < 2 * len(paths), len(calls)  # one per file, and each folder's own resolution once


class _CountedIndexList(list):
    """A list that counts its `index` calls: a linear scan each."""

    scans = 0

    def index(self, *args):
        type(self).scans += 1
        return super().index(*args)


def test_head_rows_are_reordered_without_a_scan_per_label():
    """A checkpoint's head for the run's labels in another order is reordered; each label was found with
    `list.index`, a scan of all labels per label: 5x10^7 comparisons for a 10,000-speaker head."""
    import torch
    from torch import nn
    from types import SimpleNamespace

    from hfspeech.training.model_setup import keep_head_rows_with_their_labels

    labels = [f"speaker{i:03d}" for i in range(50)]
    saved = _CountedIndexList(reversed(labels))
    model = nn.Module()
    model.config, model.classifier = SimpleNamespace(num_labels=50), nn.Linear(4, 50)
    before = model.classifier.weight.detach().clone()

    keep_head_rows_with_their_labels(model, saved, labels)

    assert _CountedIndexList.scans == 0
    assert torch.equal(model.classifier.weight, before.flip(0))  # each label's row is its saved row


class _CountedFileIO(io.FileIO):
    """A file that counts the bytes read from it, however they are asked for."""

    bytes_read = 0

    def readinto(self, buffer):
        count = super().readinto(buffer)
        type(self).bytes_read += count or 0
        return count

    def readall(self):
        data = super().readall()
        type(self).bytes_read += len(data)
        return data

    def read(self, size=-1):
        data = super().read(size)
        type(self).bytes_read += len(data or b"")
        return data


def test_copies_across_splits_are_found_without_reading_every_same_sized_file_whole(tmp_path, monkeypatch):
    """Clips of one length have one size (a keyword set's 1-s WAVs), so the audit read every file of every split
    whole. A file is now read whole only when its first bytes match those of a file in another split."""
    from datasets import DatasetDict

    from hfspeech.data import split_audit

    rng = np.random.default_rng(0)
    splits = {"train": [], "test": []}
    for name, files in splits.items():
        for i in range(20):
            path = tmp_path / f"{name}{i}.wav"
            path.write_bytes(rng.bytes(64 * 1024))
            files.append(str(path))
    (tmp_path / "copy.wav").write_bytes((tmp_path / "train3.wav").read_bytes())
    splits["test"].append(str(tmp_path / "copy.wav"))
    monkeypatch.setattr(split_audit, "open", lambda path, mode: io.BufferedReader(_CountedFileIO(path, "r")),
                        raising=False)

    warnings = split_audit.audit_splits(DatasetDict({name: _audio_split(paths) for name, paths in splits.items()}))

    assert any("1 file(s) of the test split have the same contents" in warning and "copy.wav = " in warning
               for warning in warnings), warnings
    assert 0 < _CountedFileIO.bytes_read < 41 * 64 * 1024 / 4, _CountedFileIO.bytes_read


def test_the_copies_a_warning_names_are_the_first_in_the_split(tmp_path):
    """The files were taken from a `set`, whose order changes with each process's string hashing: the same data
    gave data_report.json and the model card other example copies on every run."""
    from datasets import DatasetDict

    from hfspeech.data import split_audit

    rng = np.random.default_rng(1)
    train, test = [], []
    for i in range(20):
        data = rng.bytes(1000)
        for name, files in (("train", train), ("copy", test)):
            (tmp_path / f"{name}{i:02d}.wav").write_bytes(data)
            files.append(str(tmp_path / f"{name}{i:02d}.wav"))

    warnings = split_audit.audit_splits(DatasetDict({"train": _audio_split(train), "test": _audio_split(test)}))

    folder = tmp_path.name
    first = ", ".join(f"{folder}/copy{i:02d}.wav = {folder}/train{i:02d}.wav" for i in range(3))
    assert any(f"({first} and 17 more)" in warning for warning in warnings), warnings


@pytest.mark.parametrize("which", ["single", "multi"])
def test_fractional_class_ids_are_refused_as_evaluate_refused_them(which):
    """Given whole, predictions and references skipped evaluate's Arrow cast, which refused 1.7 as a class id or
    0.7 as a multi-label reference: they were truncated (to class 1, to "absent") and scored without a word."""
    if which == "single":
        call = lambda: ClassificationMetrics().compute(predictions=[1.7, 0.0], references=[1, 0])  # noqa: E731
    else:
        scores = np.array([[0.9, 0.1], [0.2, 0.8]])
        call = lambda: MultiLabelMetrics().compute(predictions=scores, references=scores * 0.7)  # noqa: E731
    with pytest.raises(ValueError, match="expected format"):
        call()
