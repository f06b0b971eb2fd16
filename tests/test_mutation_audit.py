"""Tests written by a mutation audit: each one fails on a small, plausible bug (a flipped comparison, a dropped term,
an ignored argument) in code that decides the numbers users see, which no other test noticed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hfspeech.evaluation.metrics import MultiLabelMetrics
from hfspeech.evaluation.thresholds import tune_thresholds


def test_tuned_threshold_takes_the_highest_of_tied_cuts_and_sits_halfway_to_the_next_lower_score():
    # positives 0.9, 0.3; negatives 0.6, 0.5, 0.1. F1 at >= 0.9 is 2/3, and at >= 0.3 it is 2/3 too: the highest
    # cut wins, and the threshold goes halfway down to the next lower score (0.6), as the docstring promises.
    scores = np.array([[0.9], [0.3], [0.6], [0.5], [0.1]])
    truth = np.array([[1], [1], [0], [0], [0]])
    assert tune_thresholds(scores, truth)[0] == pytest.approx(0.75)  # lowest tied cut: 0.2; no halfway: 0.9


def test_a_class_positive_in_every_clip_is_not_counted_in_roc_auc():
    truth = np.array([[1, 1], [1, 0], [1, 1], [1, 0]])  # class 0: every clip positive, ROC-AUC undefined
    scores = np.array([[0.9, 0.8], [0.2, 0.3], [0.7, 0.6], [0.4, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's UndefinedMetricWarning: it was asked for the undefined one
        metrics = MultiLabelMetrics().compute(predictions=scores, references=truth, per_class=True)
    assert metrics["roc_auc_num_classes"] == 1 and metrics["roc_auc_macro"] == 1.0
    assert metrics["per_class"]["0"]["roc_auc"] is None and metrics["map_num_classes"] == 2


def multi_label_config(thresholds: dict[str, float]):
    from transformers import AutoConfig

    labels = list(thresholds)
    return AutoConfig.for_model("wav2vec2", num_labels=len(labels), id2label=dict(enumerate(labels)),
                                label2id={label: i for i, label in enumerate(labels)},
                                problem_type="multi_label_classification", label_thresholds=thresholds)


def test_a_window_scoring_exactly_its_threshold_votes_for_the_label():
    from hfspeech.inference.classifier import aggregate_scores

    config = multi_label_config({"dog": 0.25, "cat": 0.75})  # binary fractions: exact in float32
    windows = np.array([[0.25, 0.75], [0.25, 0.5], [0.0, 0.75], [0.0, 0.0]])
    assert aggregate_scores(windows, "vote", config).tolist() == [0.5, 0.5]  # "at or above its threshold"


def test_a_label_in_exactly_half_the_windows_is_active_with_vote(tmp_path):
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.windows import WindowResult
    from tests.conftest import save_random_baseline

    model = save_random_baseline(tmp_path / "model", "cnn", ["dog", "cat"], initializer_range=0.02,
                                 problem_type="multi_label_classification", label_thresholds={"dog": 0.5, "cat": 0.75})
    classifier = AudioClassifier.from_pretrained(str(model))
    windows = [WindowResult(0, 0.0, 1.0, np.array([0.75, 0.75], np.float32)),
               WindowResult(1, 0.5, 1.5, np.array([0.25, 0.5], np.float32))]
    prediction = classifier.prediction_from_windows("x.wav", windows, aggregate="vote")
    # each label is at or above its threshold in one of the two windows: active "when at least half the windows
    # had it" (the docs), whatever its threshold (cat's 0.75 is for scores, not for shares of windows)
    assert prediction.active_labels == ["dog", "cat"]
    # the means: dog 0.5, at its threshold ("at or above": active); cat 0.625, under its 0.75
    assert classifier.prediction_from_windows("x.wav", windows).active_labels == ["dog"]


def test_the_int8_gate_keeps_a_file_that_loses_exactly_the_allowed_points(tmp_path, monkeypatch):
    """The limit is inclusive (only "more than" it is refused): 80/100 -> 79/100 is 1 point, and passes a 1-point
    gate. The measurement is replaced (no models to run): the decision, and what it does to the file, are tested."""
    from hfspeech.inference import agreement
    from hfspeech.inference.classifier import AudioClassifier

    monkeypatch.setattr(AudioClassifier, "from_pretrained", lambda *args, **kwargs: None)
    monkeypatch.setattr(agreement, "compare_on_clips", lambda *args: agreement.Comparison(100, 0.80, 0.79, 0.95))
    clips = (["a.wav"], ["dog"])
    quantized = tmp_path / "onnx" / "model_quantized.onnx"
    quantized.parent.mkdir()
    quantized.write_bytes(b"int8")
    _, record = agreement.gate_int8(str(tmp_path / "model"), quantized, tmp_path / "clips", clips=clips)
    assert record["passed"] and not record["kept_by_force"] and quantized.is_file()
    monkeypatch.setattr(agreement, "compare_on_clips", lambda *args: agreement.Comparison(100, 0.80, 0.78, 0.95))
    with pytest.raises(agreement.AccuracyGateError, match="loses 2.00 accuracy points"):
        agreement.gate_int8(str(tmp_path / "model"), quantized, tmp_path / "clips", clips=clips)
    assert not quantized.exists()


def test_the_missing_class_warning_says_what_macro_f1_does_with_the_class():
    """A class with no test clip is left out of macro-F1 (`ClassificationMetrics`: a perfect model scores 1.0);
    the split audit's warning, which reaches metrics.json and the model card, said it counted as 0."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from hfspeech.data.split_audit import audit_splits
    from hfspeech.evaluation.metrics import ClassificationMetrics

    features = Features({"audio": Value("string"), "label": ClassLabel(names=["no", "yes", "maybe"])})
    split = lambda name, labels: Dataset.from_dict(  # noqa: E731
        {"audio": [f"/nowhere/{name}{i}.wav" for i in range(len(labels))], "label": labels}, features=features)
    (warning,) = audit_splits(DatasetDict({"train": split("train", [0, 1, 2]), "test": split("test", [0, 1, 1])}))
    assert warning.startswith("the test split has no clip of 1 of 3 classes (maybe)")
    perfect = ClassificationMetrics().compute(predictions=[0, 1, 1], references=[0, 1, 1], labels=[0, 1, 2])
    assert perfect["macro_f1"] == 1.0
    assert "counts each missing class as 0" not in warning and "macro-F1 leaves them out" in warning


def test_a_window_the_gate_skipped_has_no_scores_in_the_timeline_rather_than_zeros(tmp_path):
    """A skipped window was never seen by the model: 0.0 would read as "the model said no" (and paint the heat
    map as confident silence); the JSON holds null and the CSV empty cells."""
    import csv
    import json
    from types import SimpleNamespace

    from hfspeech.inference.classifier import Prediction
    from hfspeech.inference.timeline import write_timeline
    from hfspeech.inference.windows import WindowResult

    windows = [WindowResult(0, 0.0, 1.0, np.array([0.75, 0.25], np.float32)),
               WindowResult(1, 0.5, 1.5, None, skipped=True)]
    prediction = Prediction("a.wav", ["dog", "cat"], [0.75, 0.25], 2, windows=windows)
    paths = write_timeline(prediction, SimpleNamespace(id2label={0: "dog", 1: "cat"}), tmp_path, "a")
    assert json.loads(paths["json"].read_text())["scores"] == [[0.75, 0.25], [None, None]]
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(row["dog"], row["cat"]) for row in rows] == [("0.750000", "0.250000"), ("", "")]


@pytest.mark.parametrize("multi_label", [False, True])
def test_the_distillation_loss_is_the_documented_sum_under_mixup(multi_label):
    """(1 - w) * hard + w * T**2 * soft, the hard loss mixed in proportion lam with the permuted labels and the
    teacher's tempered probabilities mixed likewise (training.soft_targets), computed here term by term."""
    import torch
    from torch.nn import functional as F

    from hfspeech.training.soft_targets import Distillation, MixedBatch, soft_target_loss

    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 3, generator=generator), 3 * torch.randn(4, 3, generator=generator)
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]) if multi_label else torch.tensor([0, 2, 1, 2])
    permutation, lam, temperature, weight = torch.tensor([2, 0, 3, 1]), 0.7, 2.0, 0.3
    mix = MixedBatch({}, permutation, lam)
    if multi_label:
        target = lam * labels.float() + (1 - lam) * labels.float()[permutation]
        hard = F.binary_cross_entropy_with_logits(student, target)
        teacher_target = torch.sigmoid(teacher / temperature)
        teacher_target = lam * teacher_target + (1 - lam) * teacher_target[permutation]
        soft = F.binary_cross_entropy_with_logits(student / temperature, teacher_target)
    else:
        hard = lam * F.cross_entropy(student, labels) + (1 - lam) * F.cross_entropy(student, labels[permutation])
        teacher_target = F.softmax(teacher / temperature, dim=-1)
        teacher_target = lam * teacher_target + (1 - lam) * teacher_target[permutation]
        log_student = F.log_softmax(student / temperature, dim=-1)
        soft = (teacher_target * (teacher_target.log() - log_student)).sum() / len(student)
    expected = (1 - weight) * hard + weight * temperature**2 * soft
    loss = soft_target_loss(student, labels, mix, multi_label, teacher, Distillation(temperature, weight))
    torch.testing.assert_close(loss, expected)


def test_a_group_disjoint_test_split_holds_the_number_of_groups_nearest_the_share():
    """Ten speakers of 10 clips, 27% for test: three speakers (30 clips) are nearer 27 than two (20). A group is
    taken when at least half of it fits; taking only groups that fit whole gave 20%."""
    from datasets import Dataset, DatasetDict

    from hfspeech.data.groups import GROUP_COLUMN, group_disjoint_splits

    data = Dataset.from_dict({"label": [0, 1] * 50, GROUP_COLUMN: [f"speaker{i // 10}" for i in range(100)]})
    splits = group_disjoint_splits(DatasetDict({"train": data}), validation_fraction=0, test_fraction=0.27, seed=3)
    assert (len(splits["train"]), len(splits["test"])) == (70, 30)
    assert not set(splits["train"][GROUP_COLUMN]) & set(splits["test"][GROUP_COLUMN])


def test_a_group_disjoint_split_leaves_a_group_to_train_on_whatever_the_share():
    from datasets import Dataset, DatasetDict

    from hfspeech.data.groups import GROUP_COLUMN, group_disjoint_splits

    data = Dataset.from_dict({"label": [0, 1] * 15, GROUP_COLUMN: [f"speaker{i // 10}" for i in range(30)]})
    splits = group_disjoint_splits(DatasetDict({"train": data}), validation_fraction=0, test_fraction=0.9)
    assert (len(splits["train"]), len(splits["test"])) == (10, 20)  # every group fitted: one is kept for train


def test_group_disjoint_validation_share_is_of_the_whole_data_as_in_make_splits():
    """10% validation and 10% test of 100 clips (one per speaker): 10 clips each, as `make_splits` gives; the
    validation share taken of what the test split left was 9 clips."""
    from datasets import Dataset, DatasetDict

    from hfspeech.data.groups import GROUP_COLUMN, group_disjoint_splits

    data = Dataset.from_dict({"label": [0, 1] * 50, GROUP_COLUMN: [f"speaker{i}" for i in range(100)]})
    splits = group_disjoint_splits(DatasetDict({"train": data}), validation_fraction=0.1, test_fraction=0.1)
    assert {name: len(split) for name, split in splits.items()} == {"train": 80, "validation": 10, "test": 10}


def test_multi_label_splits_give_every_rare_class_its_share_whatever_the_seed():
    """Every clip has speech; 5 of 40 also a dog, 5 a cat. Stratified by each clip's rarest label, a 20% test split
    holds a dog and a cat clip for every seed; stratified by the commonest (speech: one stratum) it is a random
    split, which left the dog out of the test split for some seeds."""
    from datasets import Dataset, DatasetDict

    from hfspeech.data.splits import make_splits

    labels = [["speech", "dog"]] * 5 + [["speech", "cat"]] * 5 + [["speech"]] * 30
    data = DatasetDict({"train": Dataset.from_dict({"label": labels})})
    for seed in range(8):
        splits = make_splits(data, validation_fraction=0, test_fraction=0.2, seed=seed)
        for name in ("train", "test"):
            held = [label for labels in splits[name]["label"] for label in labels]
            assert held.count("dog") >= 1 and held.count("cat") >= 1, (seed, name, held)


def test_averaged_integer_buffers_are_the_rounded_mean_not_truncated():
    import torch

    from hfspeech.training.averaging import average_states

    states = [{"num_batches_tracked": torch.tensor(count), "weight": torch.tensor([float(count)])}
              for count in (1, 2, 2)]
    average = average_states(states)
    assert average["num_batches_tracked"].item() == 2 and average["num_batches_tracked"].dtype == torch.int64  # 5/3
    torch.testing.assert_close(average["weight"], torch.tensor([5 / 3]))


def test_a_tie_of_votes_goes_to_the_label_with_the_higher_mean_score(tmp_path):
    """docs/inference.md: with `--aggregate vote`, a tie of votes goes to the label the windows score higher."""
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.windows import WindowResult
    from tests.conftest import save_random_baseline

    model = save_random_baseline(tmp_path / "m", "cnn", ["a", "b", "c"], 0.02)
    classifier = AudioClassifier.from_pretrained(str(model))
    windows = [WindowResult(0, 0.0, 1.0, np.array([0.6, 0.3, 0.1], np.float32)),
               WindowResult(1, 0.5, 1.5, np.array([0.05, 0.9, 0.05], np.float32))]  # one vote each; means .325, .6
    prediction = classifier.prediction_from_windows("x.wav", windows, top_k=3, aggregate="vote")
    assert prediction.labels == ["b", "a", "c"] and prediction.scores == [0.5, 0.5, 0.0]


def test_a_stereo_wav_is_mixed_down_as_ffmpeg_mixes_it(tmp_path):
    """libsndfile reads WAVs (`decode_audio`'s fast path), ffmpeg the formats it cannot (M4A, WebM...): both must
    mix stereo the same way, or one recording scores differently as WAV and as M4A (a gain of 0.5: 3 dB off)."""
    import soundfile as sf
    from datasets import Audio

    from hfspeech.data.audio import decode_audio

    t = np.arange(16000) / 16000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], axis=1)
    sf.write(tmp_path / "s.wav", stereo.astype(np.float32), 16000, subtype="FLOAT")
    ours = decode_audio(str(tmp_path / "s.wav"), 16000)
    source = {"path": str(tmp_path / "s.wav"), "bytes": None}
    decoder = Audio(sampling_rate=16000, num_channels=1).decode_example(source)
    np.testing.assert_allclose(ours, decoder.get_all_samples().data.numpy().reshape(-1), atol=1e-5)


def test_a_window_in_seconds_is_the_nearest_number_of_samples():
    """0.7 s at 22,050 Hz is 15,434.999... samples in floating point: 15,435, not the truncated 15,434."""
    from hfspeech.inference.windows import split_windows

    assert {piece.size for piece in split_windows(np.zeros(2 * 22050, np.float32), 22050, 0.7, 0.7)} == {15435}


def test_the_default_hop_is_half_a_window():
    """docs/long-audio.md: "the hop (default: half a window)": 2 s cut into 1-s windows at 0, 0.5 and 1 s."""
    from hfspeech.inference.windows import slice_waveform, window_sizes

    window, hop = window_sizes(16000, 1.0)
    assert [start for start, _ in slice_waveform(np.zeros(32000, np.float32), window, hop)] == [0, 8000, 16000]
