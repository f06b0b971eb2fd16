"""Multi-label sound events end to end: data layouts, splits, BCE loss, metrics, thresholds, serving, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, ClassLabel, Dataset, List
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from transformers import AutoConfig, AutoModelForAudioClassification, TrainingArguments

from hfspeech.cli import main as cli
from hfspeech.data.audio import decode_audio
from hfspeech.data.labels import encode_labels, label_names_of
from hfspeech.data.loading import DataError, load_audio_dataset
from hfspeech.data.splits import make_splits
from hfspeech.data.transforms import AudioClassificationCollator
from hfspeech.evaluation.metrics import MultiLabelMetrics, make_compute_metrics
from hfspeech.evaluation.thresholds import tune_thresholds
from hfspeech.models.scores import thresholds_from_config
from hfspeech.features.feature_extraction import WaveformFeatureExtractor
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.pipeline import active_labels, audio_classification_pipeline
from hfspeech.models.losses import pos_weight_from_frequencies
from hfspeech.synthetic.events import DEFAULT_EVENTS, generate_event_dataset, synth_event
from hfspeech.synthetic.tiny import save_tiny_ssl_model
from hfspeech.training.run import main
from hfspeech.training.trainer import AudioClassificationTrainer
from tests.conftest import TINY_CNN

MULTI = ["--problem_type", "multi_label_classification"]
TINY_LSTM = json.dumps({"lstm_hidden_size": 8, "num_lstm_layers": 1, "n_mels": 16, "n_mfcc": 13})
# Measured (seeds 0, 1, 2 of data and training): test mAP 0.865, 0.911, 0.917 at label prevalence 0.39,
# 0.35, 0.38; the margin below holds with room to spare.
MAP_MARGIN_OVER_CHANCE = 0.3


def manifest_rows(root: Path) -> list[tuple[str, list[str]]]:
    return [(row["path"], row["labels"]) for row in map(json.loads, (root / "labels.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return generate_event_dataset(tmp_path_factory.mktemp("events"), num_clips=240, seed=0)


@pytest.fixture(scope="module")
def trained(events, tmp_path_factory) -> Path:
    """A tiny CNN trained through the recipe on the generated events (CSV manifest, `;`-separated labels)."""
    output_dir = tmp_path_factory.mktemp("multilabel") / "cnn"
    main(["--train_file", str(events / "labels.csv"), *MULTI, "--output_dir", str(output_dir),
          "--config_overrides", TINY_CNN, "--num_train_epochs", "8", "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "16", "--seed", "0", "--save_total_limit", "1",
          "--validation_split_percentage", "20", "--test_split_percentage", "20"])
    return output_dir


# --- generated data ------------------------------------------------------------------------------


def test_event_generator_writes_audio_and_matching_manifests(events, tmp_path):
    rows = manifest_rows(events)
    assert len(rows) == 240 and all(1 <= len(labels) <= 3 for _, labels in rows)
    csv_rows = [line.split(",") for line in (events / "labels.csv").read_text().splitlines()[1:]]
    assert [(path, labels.split(";")) for path, labels in csv_rows] == rows
    info = json.loads((events / "dataset_info.json").read_text())
    assert info["counts"] == {e: sum(e in labels for _, labels in rows) for e in DEFAULT_EVENTS}
    assert all(count > 60 for count in info["counts"].values())
    clip, rate = sf.read(events / rows[0][0], dtype="float32")
    assert (rate, len(clip)) == (16000, 16000) and np.abs(clip).max() > 0.1
    # Same seed: same bytes; through the CLI as well.
    assert cli(["demo-data", str(tmp_path / "again"), "--kind", "events", "--num-clips", "3"]) == 0
    assert (tmp_path / "again" / rows[2][0]).read_bytes() == (events / rows[2][0]).read_bytes()


def test_each_event_has_its_own_spectrum():
    rng = np.random.default_rng(0)
    centroids = {}
    for kind in DEFAULT_EVENTS:
        event = synth_event(kind, rng, 16000)
        spectrum = np.abs(np.fft.rfft(event)) ** 2
        centroids[kind] = float((np.fft.rfftfreq(len(event), 1 / 16000) * spectrum).sum() / spectrum.sum())
    assert centroids["hum"] < 400 < centroids["beep"] < 1500 < centroids["chirp"] < centroids["burst"]


# --- label layouts -------------------------------------------------------------------------------


def test_every_manifest_format_parses_to_the_same_labels(events, tmp_path):
    rows = manifest_rows(events)[:6] + [(manifest_rows(events)[6][0], [])]  # the last clip: no event
    paths = [str(events / path) for path, _ in rows]
    expected = [sorted(labels) for _, labels in rows]
    (tmp_path / "m.csv").write_text("path,labels\n" + "".join(f"{p},{';'.join(l)}\n" for p, (_, l) in zip(paths, rows)))
    (tmp_path / "m.tsv").write_text("path\tlabels\n" + "".join(f"{p}\t{' ; '.join(l)}\n" for p, (_, l) in zip(paths, rows)))
    (tmp_path / "list.jsonl").write_text("".join(json.dumps({"path": p, "labels": l}) + "\n" for p, (_, l) in zip(paths, rows)))
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"path": p, "labels": ";".join(l)}) + "\n"
                                                for p, (_, l) in zip(paths, rows)))
    Dataset.from_dict({"audio": paths, "labels": [l for _, l in rows]}).cast_column("audio", Audio()) \
        .save_to_disk(str(tmp_path / "strings"))
    names = sorted({e for _, l in rows for e in l})
    feature = List(ClassLabel(names=names))
    Dataset.from_dict({"audio": paths, "labels": [[names.index(e) for e in l] for _, l in rows]}) \
        .cast_column("labels", feature).save_to_disk(str(tmp_path / "classlabels"))

    sources = [dict(train_file=str(tmp_path / n)) for n in ("m.csv", "m.tsv", "list.jsonl", "text.jsonl")]
    sources += [dict(dataset_name=str(tmp_path / n)) for n in ("strings", "classlabels")]
    for source in sources:
        train = encode_labels(load_audio_dataset(**source), multi_label=True)["train"]
        assert label_names_of(train) == names, source
        decoded = [sorted(names[i] for i in ids) for ids in train["label"]]
        assert decoded == expected, source
        assert decoded[-1] == []  # an empty list is a clip with no event


def test_unknown_label_names_the_file_and_the_label(events, tmp_path):
    (path, labels), (other, _) = manifest_rows(events)[:2]
    (tmp_path / "train.csv").write_text(f"path,labels\n{events / path},{';'.join(labels)}\n")
    (tmp_path / "test.csv").write_text(f"path,labels\n{events / other},{labels[0]};squeak\n")
    data = load_audio_dataset(train_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "test.csv"))
    with pytest.raises(DataError, match=rf"{events / other}: unknown label 'squeak' in split 'test'"):
        encode_labels(data, multi_label=True)
    with pytest.raises(DataError, match=r"unknown label 'squeak'.*known labels: \['beep', 'chirp'"):
        encode_labels(data, list(DEFAULT_EVENTS), multi_label=True)


def test_list_labels_without_multi_label_say_how_to_train_them(events, tmp_path):
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"path": str(events / p), "labels": l}) + "\n"
                                              for p, l in manifest_rows(events)[:3]))
    with pytest.raises(DataError, match="--problem_type multi_label_classification"):
        encode_labels(load_audio_dataset(train_file=str(tmp_path / "m.jsonl")))
    (tmp_path / "empty.csv").write_text("path,labels\n" + "".join(f"{events / p},\n" for p, _ in manifest_rows(events)[:3]))
    with pytest.raises(DataError, match="no clip in split 'train' has a label"):
        encode_labels(load_audio_dataset(train_file=str(tmp_path / "empty.csv")), multi_label=True)


def test_splits_of_list_labels_are_stratified_by_the_rarest_label(events):
    data = encode_labels(load_audio_dataset(train_file=str(events / "labels.csv")), multi_label=True)
    splits = make_splits(data, 0.2, 0.2, seed=3)
    assert sum(len(s) for s in splits.values()) == 240 and splits["train"].column_names == ["audio", "label"]
    for split in ("validation", "test"):
        counts = np.bincount([i for ids in splits[split]["label"] for i in ids], minlength=5)
        assert counts.min() >= 10, counts  # every class present in a fair share
    tiny = data["train"].select(range(3))  # too small to stratify: a seeded random split instead
    first, again = make_splits({"train": tiny}, 0.3, 0.0, seed=1), make_splits({"train": tiny}, 0.3, 0.0, seed=1)
    assert first["validation"]["audio"] == again["validation"]["audio"] and len(first["train"]) == 2


def test_collator_turns_label_lists_into_multi_hot():
    extractor = WaveformFeatureExtractor(sampling_rate=16000)
    examples = [{"input_values": np.zeros(800, np.float32), "label": ids} for ids in ([0, 2], [], [1])]
    batch = AudioClassificationCollator(extractor, num_labels=3)(examples)
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="num_labels"):
        AudioClassificationCollator(extractor)(examples)


# --- loss ----------------------------------------------------------------------------------------


def test_pos_weight_is_negatives_over_positives_clipped():
    multi_hot = np.array([[1, 0, 0, 1], [0, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]] * 50)
    weights = pos_weight_from_frequencies(multi_hot, max_weight=100.0)
    assert weights.tolist() == pytest.approx([150 / 50, 150 / 50, 1.0, 1.0])  # no positive / no negative: 1
    rare = np.zeros((1000, 1), int)
    rare[0] = 1
    assert pos_weight_from_frequencies(rare, max_weight=20.0).tolist() == [20.0]


def tiny_multi_label_model(family: str, folder: Path, labels: list[str]):
    if family == "wav2vec2":
        save_tiny_ssl_model(folder, "wav2vec2", labels)
        return AutoModelForAudioClassification.from_pretrained(folder, problem_type="multi_label_classification")
    from hfspeech.models import LSTMAudioConfig, LSTMAudioForAudioClassification

    torch.manual_seed(0)
    config = LSTMAudioConfig(num_labels=len(labels), problem_type="multi_label_classification", **json.loads(TINY_LSTM))
    return LSTMAudioForAudioClassification(config)


@pytest.mark.parametrize("family", ["wav2vec2", "lstm"])
def test_the_trainer_computes_bce_with_pos_weight(family, tmp_path):
    """Wav2Vec2ForSequenceClassification computes only cross-entropy; the Trainer computes BCE for every model."""
    model = tiny_multi_label_model(family, tmp_path / "model", ["a", "b", "c"]).eval()
    inputs = {"input_values": torch.randn(4, 8000, generator=torch.Generator().manual_seed(0))}
    target = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]])
    logits = model(**inputs).logits.detach()
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    plain = AudioClassificationTrainer(model=model, args=args).compute_loss(model, {**inputs, "labels": target})
    assert plain.item() == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(logits, target).item(), rel=1e-5)
    pos_weight = [3.0, 1.0, 0.5]
    weighted = AudioClassificationTrainer(model=model, args=args, pos_weight=pos_weight).compute_loss(
        model, {**inputs, "labels": target})
    by_hand = -(torch.tensor(pos_weight) * target * torch.nn.functional.logsigmoid(logits)
                + (1 - target) * torch.nn.functional.logsigmoid(-logits)).mean()
    assert weighted.item() == pytest.approx(by_hand.item(), rel=1e-5) and weighted.item() != pytest.approx(plain.item())
    with pytest.raises(ValueError, match="--pos_weight_from_frequencies"):
        AudioClassificationTrainer(model=model, args=args, class_weights=[1.0, 1.0, 1.0])


@pytest.mark.parametrize("family", ["wav2vec2", "audio-spectrogram-transformer", "whisper", "lstm"])
def test_other_model_families_run_the_multi_label_recipe(family, events, tmp_path):
    if family != "lstm":
        model = ["--model_name_or_path", str(save_tiny_ssl_model(tmp_path / "tiny", family)), "--learning_rate", "1e-3"]
    else:
        model = ["--model_type", "lstm", "--config_overrides", TINY_LSTM, "--learning_rate", "1e-2"]
    main(["--train_file", str(events / "labels.jsonl"), *MULTI, *model, "--output_dir", str(tmp_path / "run"),
          "--num_train_epochs", "1", "--max_train_samples", "8", "--max_eval_samples", "8",
          "--per_device_train_batch_size", "8", "--pos_weight_from_frequencies", "--seed", "0"])
    config = AutoConfig.from_pretrained(tmp_path / "run")
    assert config.problem_type == "multi_label_classification" and sorted(config.label_thresholds) == sorted(DEFAULT_EVENTS)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test_map_macro"] <= 1 and metrics["num_train_clips"] == 8
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["best_metric"] == pytest.approx(metrics["eval_map_macro"])  # the best model chosen by mAP


# --- metrics and thresholds ----------------------------------------------------------------------


def test_metrics_match_sklearn_on_a_hand_built_example():
    truth = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    scores = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.4], [0.6, 0.3, 0.2], [0.1, 0.1, 0.9], [0.4, 0.5, 0.3]])
    thresholds = [0.5, 0.5, 0.35]
    metrics = MultiLabelMetrics().compute(predictions=scores, references=truth, thresholds=thresholds)
    predicted = (scores >= thresholds).astype(int)
    assert metrics["map_macro"] == pytest.approx(average_precision_score(truth, scores, average="macro"))
    assert metrics["map_micro"] == pytest.approx(average_precision_score(truth, scores, average="micro"))
    assert metrics["roc_auc_macro"] == pytest.approx(roc_auc_score(truth, scores, average="macro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert metrics["subset_accuracy"] == pytest.approx(3 / 5)  # rows 0, 1 and 3 exactly right
    # A class with a single value in the references is skipped by ROC-AUC (and by AP without positives).
    truth[:, 1] = 0
    skipped = MultiLabelMetrics().compute(predictions=scores, references=truth)
    assert skipped["roc_auc_num_classes"] == 2
    assert skipped["roc_auc_macro"] == pytest.approx(roc_auc_score(truth[:, [0, 2]], scores[:, [0, 2]], average="macro"))
    assert skipped["map_macro"] == pytest.approx(average_precision_score(truth[:, [0, 2]], scores[:, [0, 2]]))


def test_threshold_tuning_picks_the_f1_optimal_threshold():
    # Class 0: positives score 0.9, 0.7, 0.35; negatives 0.6, 0.3, 0.1. F1 at >= 0.7: 0.8; at >= 0.35: 6/7 (best).
    # Class 1: no positive in validation -> 0.5.
    scores = np.array([[0.9, 0.1], [0.7, 0.2], [0.35, 0.3], [0.6, 0.4], [0.3, 0.5], [0.1, 0.6]])
    truth = np.array([[1, 0], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0]])
    thresholds = tune_thresholds(scores, truth)
    assert 0.3 < thresholds[0] <= 0.35 and thresholds[1] == 0.5
    candidates = np.unique(scores[:, 0])
    best = max(f1_score(truth[:, 0], scores[:, 0] >= t) for t in candidates)
    assert f1_score(truth[:, 0], scores[:, 0] >= thresholds[0]) == pytest.approx(best) == pytest.approx(6 / 7)


def test_compute_metrics_follows_the_config(tmp_path):
    config = AutoConfig.for_model("wav2vec2", num_labels=2, problem_type="multi_label_classification",
                                  label_thresholds={"LABEL_0": 0.9})
    prediction = type("P", (), {"predictions": np.array([[2.0, -1.0], [0.0, 3.0]]), "label_ids": np.eye(2)})
    metrics = make_compute_metrics(2, config)(prediction)
    assert metrics["map_macro"] == 1.0 and metrics["macro_recall"] == 0.5  # sigmoid(2) = 0.88 < 0.9
    assert "accuracy" in make_compute_metrics(2)(type("P", (), {"predictions": np.eye(2), "label_ids": np.arange(2)}))


# --- the trained model ---------------------------------------------------------------------------


def test_trained_event_model_beats_chance_and_writes_its_report(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["test_map_macro"] > metrics["test_label_prevalence"] + MAP_MARGIN_OVER_CHANCE, metrics
    assert metrics["test_roc_auc_num_classes"] == 5 and metrics["labels"] == sorted(DEFAULT_EVENTS)
    report = json.loads((trained / "test_multilabel_report.json").read_text())
    assert report["metrics"]["map_macro"] == metrics["test_map_macro"]
    assert sum(row["support"] for row in report["per_class"].values()) > metrics["num_test_clips"]
    assert (trained / "test_per_class_ap.png").stat().st_size > 5000
    state = json.loads((trained / "trainer_state.json").read_text())
    assert state["best_metric"] == pytest.approx(max(e["eval_map_macro"] for e in state["log_history"]
                                                     if "eval_map_macro" in e))


def test_thresholds_are_saved_and_reload(trained):
    saved = json.loads((trained / "config.json").read_text())
    metrics = json.loads((trained / "metrics.json").read_text())
    assert saved["problem_type"] == "multi_label_classification"
    assert saved["label_thresholds"] == metrics["label_thresholds"]
    assert sorted(saved["label_thresholds"]) == sorted(DEFAULT_EVENTS)
    assert any(value != 0.5 for value in saved["label_thresholds"].values())  # tuned, not defaults
    model = AutoModelForAudioClassification.from_pretrained(trained)
    assert model.config.label_thresholds == saved["label_thresholds"]
    assert model.config.problem_type == "multi_label_classification"


def test_pipeline_scores_with_sigmoid_and_marks_the_same_labels_as_the_classifier(trained, events):
    classify = audio_classification_pipeline(str(trained))
    classifier = AudioClassifier.from_pretrained(str(trained))
    for path, _ in manifest_rows(events)[:8]:
        waveform = decode_audio(str(events / path), 16000)
        results = classify({"raw": waveform, "sampling_rate": 16000})
        ours = classifier.classify_waveform(waveform, top_k=5)
        assert [r["label"] for r in results] == ours.labels
        assert np.allclose([r["score"] for r in results], ours.scores, atol=1e-5)
        assert sorted(active_labels(results)) == sorted(ours.active_labels)
        assert all(r["active"] == (r["score"] >= r["threshold"]) for r in results)
    softmax = classify({"raw": waveform, "sampling_rate": 16000}, function_to_apply="softmax")
    assert sum(r["score"] for r in softmax) == pytest.approx(1.0, abs=1e-5) and "active" not in softmax[0]


def test_pipeline_reads_arrays_at_other_rates_and_pcm_as_the_classifier_does(trained, events):
    """transformers asked for torchaudio (no build for the pinned torch) to resample, and took int16 as is."""
    classify = audio_classification_pipeline(str(trained))
    classifier = AudioClassifier.from_pretrained(str(trained))
    path = events / manifest_rows(events)[0][0]
    stereo_pcm = (np.repeat(decode_audio(str(path), 44100)[:, None], 2, axis=1) * 20000).astype(np.int16)
    ours = classifier.classify_waveform(stereo_pcm, sampling_rate=44100, top_k=5)
    for given in ({"array": stereo_pcm, "sampling_rate": 44100}, {"raw": stereo_pcm, "sampling_rate": 44100}):
        results = classify(given)
        assert [r["label"] for r in results] == ours.labels
        assert np.allclose([r["score"] for r in results], ours.scores, atol=1e-5)


def test_onnx_export_keeps_problem_type_thresholds_and_active_labels(trained, events, tmp_path):
    from hfspeech.export import export_onnx

    folder = export_onnx(trained, tmp_path / "onnx").parent
    exported = json.loads((folder / "config.json").read_text())
    original = json.loads((trained / "config.json").read_text())
    assert exported["problem_type"] == original["problem_type"]
    assert exported["label_thresholds"] == original["label_thresholds"]
    onnx, torch_model = AudioClassifier.from_pretrained(str(folder)), AudioClassifier.from_pretrained(str(trained))
    assert onnx.backend.name == "onnx"
    for path, _ in manifest_rows(events)[:12]:
        assert onnx.classify_file(str(events / path)).active_labels == torch_model.classify_file(str(events / path)).active_labels


def test_evaluate_reports_multi_label_metrics_at_the_saved_thresholds(trained, events, tmp_path):
    rows = manifest_rows(events)[-40:]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({"path": str(events / p), "labels": l}) + "\n" for p, l in rows))
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(trained), "--test_file", str(tmp_path / "test.jsonl"),
                "--output_dir", str(out)]) == 0
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert (out / "test_per_class_ap.png").is_file() and (out / "test_multilabel_report.json").is_file()
    # The same numbers from the model's scores, computed here with scikit-learn.
    classifier = AudioClassifier.from_pretrained(str(trained))
    names = [classifier.id2label[i] for i in range(5)]
    scores = classifier.predict_proba([decode_audio(str(events / p), 16000) for p, _ in rows])
    truth = np.array([[name in labels for name in names] for _, labels in rows], dtype=int)
    assert metrics["map_macro"] == pytest.approx(average_precision_score(truth, scores, average="macro"), abs=1e-4)
    thresholds = thresholds_from_config(classifier.config)
    assert metrics["label_thresholds"] == pytest.approx(dict(zip(names, thresholds)))
    assert metrics["micro_f1"] == pytest.approx(f1_score(truth, scores >= thresholds, average="micro"), abs=1e-4)
    assert metrics["num_clips"] == 40
