"""A multi-label answer lists every active label in the Python API too (session 32): `AudioClassifier.classify_file`
/ `classify_waveform` and hfspeech's `pipeline("audio-classification")` give the top k and every active label
ranked below them, as `hfspeech predict` and `serve` do (`outputs.with_every_active_label`). Softmax scores of a
multi-label pipeline and single-label models keep their plain top k.

The model is session 31's random-weight 6-label CNN: on its clip the sigmoids rank `rain` last (0.267), and `rain`'s
threshold of 0.25 is the only one it reaches (the others are at 0.95).

A stream's label events end (`StreamingClassifier(offsets=True)`, `hfspeech stream`'s `ended` lines): checked with a
two-label model whose scores are known from the tones it hears (`ToneBackend`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from hfspeech.cli import main as cli
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.pipeline import active_labels, audio_classification_pipeline
from hfspeech.inference.streaming import StreamingClassifier
from tests.conftest import save_random_baseline
from tests.test_multilabel_answers31 import LABELS, RANKED, with_thresholds

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """`rain`: only `rain` (ranked last) active on the clip; `single`: the same CNN as a single-label model."""
    root = tmp_path_factory.mktemp("multilabel32")
    model = save_random_baseline(root / "random", "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8],
                                 problem_type="multi_label_classification")
    single = save_random_baseline(root / "single", "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8])
    clip = np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32)
    sf.write(root / "clip.wav", clip, 16000)
    strict = {label: 0.95 for label in LABELS}
    return {"rain": with_thresholds(model, root / "rain", {**strict, "rain": 0.25}), "single": single, "random": model,
            "clip": root / "clip.wav", "samples": clip}


def test_classify_file_and_waveform_list_an_active_label_ranked_past_top_k(models):
    classifier = AudioClassifier.from_pretrained(str(models["rain"]), device=torch.device("cpu"))
    for prediction in (classifier.classify_file(str(models["clip"]), top_k=2),
                       classifier.classify_waveform(models["samples"], top_k=2, sampling_rate=16000)):
        assert prediction.labels == ["engine", "alarm", "rain"] and prediction.active_labels == ["rain"]
        assert prediction.scores[-1] == pytest.approx(0.2666, abs=1e-3)
        assert prediction.scores == sorted(prediction.scores, reverse=True)
    assert classifier.classify_file(str(models["clip"])).labels == RANKED  # top 5, then rain
    assert classifier.classify_file(str(models["clip"]), top_k=6).labels == RANKED  # nothing listed twice


def test_single_label_classify_file_keeps_its_top_k(models):
    classifier = AudioClassifier.from_pretrained(str(models["single"]), device=torch.device("cpu"))
    prediction = classifier.classify_file(str(models["clip"]), top_k=2)
    assert len(prediction.labels) == len(prediction.scores) == 2 and prediction.active_labels == []


def test_pipeline_lists_an_active_label_ranked_past_top_k(models):
    classify = audio_classification_pipeline(str(models["rain"]))
    results = classify(str(models["clip"]), top_k=2)
    assert [(r["label"], r["active"]) for r in results] == [("engine", False), ("alarm", False), ("rain", True)]
    assert results[-1]["threshold"] == 0.25 and results[-1]["score"] == pytest.approx(0.2666, abs=1e-3)
    assert [r["label"] for r in classify(str(models["clip"]))] == RANKED  # transformers' default top 5, then rain
    assert active_labels(classify(str(models["clip"]), top_k=1)) == ["rain"]
    softmax = classify(str(models["clip"]), top_k=2, function_to_apply="softmax")  # thresholds not on its scale
    assert len(softmax) == 2 and not any("active" in r for r in softmax)


class ToneBackend:
    """A two-label model whose scores are known: `alarm` for a 3 kHz tone, `hum` for a 200 Hz one, from the share of
    samples where the waveform changes sign (0.375 and 0.025; a window half of each: 0.2, neither label)."""

    def __init__(self, config):
        self.config, self.name = config, "tone"

    def logits(self, inputs):
        changes = [np.mean(np.diff(np.signbit(row[mask > 0]).astype(int)) != 0)
                   for row, mask in zip(inputs["input_values"], inputs["attention_mask"])]
        return np.array([[40 * (share - 0.3), 40 * (0.1 - share)] for share in changes], dtype=np.float32)


def tones(*parts: tuple[str, float]) -> np.ndarray:
    pitch = {"high": 3000.0, "low": 200.0}
    return np.concatenate([0.5 * np.sin(2 * np.pi * pitch[kind] * np.arange(int(16000 * seconds)) / 16000 + 0.1)
                           for kind, seconds in parts]).astype(np.float32)


@pytest.fixture(scope="module")
def tone_classifier(tmp_path_factory) -> AudioClassifier:
    folder = save_random_baseline(tmp_path_factory.mktemp("tones32") / "cnn", "cnn", ["alarm", "hum"], 0.5, n_mels=16,
                                  conv_channels=[4, 8], max_length_seconds=0.5,
                                  problem_type="multi_label_classification")
    loaded = AudioClassifier.from_pretrained(str(folder), device=torch.device("cpu"))
    return AudioClassifier(ToneBackend(loaded.config), loaded.feature_extractor)


def streamed_events(classifier, audio: np.ndarray, hop: float = 0.25, **options) -> tuple[list, StreamingClassifier]:
    """(window index, event kind, label, start, end, windows) of every event, and the stream."""
    stream = StreamingClassifier(classifier, 0.5, hop, min_windows=2, **options)
    chunks = np.array_split(audio, [1000, 9000, 9001, 30000, 52345])
    events = [(w.index, e.to_dict()["event"], e.label, e.start, e.end, e.windows)
              for w in stream.process(chunks) for e in w.events]
    return events, stream


def test_stream_events_end_at_the_first_window_below_threshold_and_at_the_end_of_input(tone_classifier):
    """Low 0-1 s, high 1-2.5 s, low 2.5-3 s (one whole window: a run shorter than --min_windows), high 3-4 s (still
    sounding when the input ends, on the last regular window: `finish` has no window to put its end on)."""
    audio = tones(("low", 1.0), ("high", 1.5), ("low", 0.5), ("high", 1.0))
    events, stream = streamed_events(tone_classifier, audio, offsets=True)
    assert events == [(1, "label", "hum", 0.0, 0.75, 2), (3, "ended", "hum", 0.0, 1.0, 3),
                      (5, "label", "alarm", 1.0, 1.75, 2), (9, "ended", "alarm", 1.0, 2.5, 5),
                      (13, "label", "alarm", 3.0, 3.75, 2)]
    assert [(e.to_dict()["event"], e.label, e.start, e.end, e.windows) for e in stream.ended_at_finish] == [
        ("ended", "alarm", 3.0, 4.0, 3)]
    assert stream.stats.windows == 15 and stream.stats.events == 3  # label events, as before
    assert 0.9 < stream.ended_at_finish[0].score < 1.0
    assert streamed_events(tone_classifier, audio)[0] == [e for e in events if e[1] == "label"]  # offsets off


def test_a_window_skipped_by_the_energy_gate_ends_an_event(tone_classifier):
    """Windows of 0.5 s every 0.5 s: high 0-1 s, silence 1-1.5 s (skipped, never scored), low 1.5-2.5 s."""
    audio = np.concatenate([tones(("high", 1.0)), np.zeros(8000, np.float32), tones(("low", 1.0))])
    events, stream = streamed_events(tone_classifier, audio, hop=0.5, offsets=True, vad="energy")
    assert events == [(1, "label", "alarm", 0.0, 1.0, 2), (2, "ended", "alarm", 0.0, 1.0, 2),
                      (4, "label", "hum", 1.5, 2.5, 2)]
    assert stream.stats.skipped == 1 and [e.label for e in stream.ended_at_finish] == ["hum"]


def test_stream_command_prints_when_each_event_ends(models, tmp_path, capsys):
    """`hfspeech stream` prints an `ended` line for each event, as `StreamingClassifier(offsets=True)` gives them,
    those still open at the end of the input last, before the counts. The random CNN's `alarm` is given a threshold
    between two of its window scores, at or below the last window's: runs end in the stream and at its end."""
    audio = tones(("low", 1.0), ("high", 1.5), ("low", 0.5), ("high", 1.0))
    sf.write(tmp_path / "take.wav", audio, 16000, subtype="FLOAT")
    windows = list(StreamingClassifier(AudioClassifier.from_pretrained(str(models["random"])), 0.5, 0.25).process(
        [audio]))
    alarm = np.array([w.scores[0] for w in windows])
    below = np.sort(alarm[alarm < min(np.median(alarm), alarm[-1])])
    threshold = float(below[-1] + min(np.median(alarm), alarm[-1])) / 2
    thresholds = {**{label: 1.0 for label in LABELS}, "alarm": threshold}  # 1.0: never reached
    model = with_thresholds(models["random"], tmp_path / "model", thresholds)
    assert cli(["stream", str(model), "--follow", str(tmp_path / "take.wav"), "--idle-timeout", "0", "--min-windows",
                "1", "--window-seconds", "0.5", "--hop-seconds", "0.25"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stream = StreamingClassifier(AudioClassifier.from_pretrained(str(model)), 0.5, 0.25, min_windows=1, offsets=True)
    expected = [e.to_dict() for w in stream.process([audio]) for e in w.events] + \
        [e.to_dict() for e in stream.ended_at_finish]
    assert [(line["event"], line["start"], line["end"]) for line in lines[:-1]] == \
        [(e["event"], e["start"], e["end"]) for e in expected]
    kinds = [line["event"] for line in lines]
    assert kinds[-2:] == ["ended", "end"] and kinds.count("ended") == kinds.count("label") > 1
