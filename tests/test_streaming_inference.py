"""Live streams: `StreamingClassifier` and `hfspeech stream` (stdin PCM, followed files, ONNX models).

A stream cut into chunks of random sizes must give the window scores offline windowing gives; events fire
at the N-th consecutive window above threshold and not before; the energy gate keeps silent windows away
from the model (counted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from hfspeech.cli import main as cli
from hfspeech.data.audio import downmix_to_mono
from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.scores import label_thresholds
from hfspeech.inference.sources import PcmDecoder, PcmFormat
from hfspeech.inference.streaming import EnergyVAD, StreamingClassifier
from tests.conftest import synth_clip
from tests.test_long_audio import save_random_cnn, tone_pattern

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")


def random_chunks(samples: np.ndarray, seed: int, largest: int = 3000) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    chunks, position = [], 0
    while position < len(samples):
        size = int(rng.integers(1, largest))
        chunks.append(samples[position : position + size])
        position += size
    return chunks


def scores(windows) -> np.ndarray:
    return np.stack([w.scores for w in windows])


@pytest.fixture(scope="module")
def random_classifier(tmp_path_factory) -> AudioClassifier:
    folder = save_random_cnn(tmp_path_factory.mktemp("stream") / "cnn")
    return AudioClassifier.from_pretrained(str(folder), device=torch.device("cpu"))


@pytest.fixture(scope="module")
def trained(trained_cnn) -> AudioClassifier:
    return AudioClassifier.from_pretrained(str(trained_cnn), device=torch.device("cpu"))


@pytest.mark.parametrize("rate,channels", [(16000, 1), (16000, 2), (8000, 2), (44100, 1)])
def test_stream_of_random_chunks_equals_offline_windows(random_classifier, rate, channels):
    """Mono or stereo (int16 chunks), at the model's rate or resampled in the stream: offline on the same
    mono waveform (resampled by soxr in one go) gives the same windows and scores (within 1e-4)."""
    audio = tone_pattern(rate, 4.1, channels=2, seed=rate)[:, :channels]
    pcm = np.round(audio * 32767).astype(np.int16)
    stream = StreamingClassifier(random_classifier, 0.5, 0.2, input_rate=rate)
    streamed = list(stream.process(random_chunks(pcm, seed=channels)))
    mono = downmix_to_mono(pcm.astype(np.float32) / 32768.0)
    offline = random_classifier.classify_waveform(soxr.resample(mono, rate, 16000) if rate != 16000 else mono,
                                                  window_seconds=0.5, hop_seconds=0.2)
    assert [(w.index, w.start, w.end) for w in streamed] == [(i, w.start, w.end) for i, w in enumerate(offline.windows)]
    assert np.ptp(scores(streamed)[:, 0]) > 0.01
    np.testing.assert_allclose(scores(streamed), scores(offline.windows), atol=1e-4, rtol=0)
    assert stream.stats.windows == stream.stats.classified == len(streamed)


def expected_events(windows, thresholds: np.ndarray, n: int) -> tuple[list[tuple[int, int, float]], list[int]]:
    """(label id, window index at which it fires, run start) recomputed from the windows' scores, and the
    lengths of all runs of windows above threshold."""
    events, runs, run = [], [], np.zeros(len(thresholds), dtype=int)
    starts = np.zeros(len(thresholds))
    for window in windows:
        above = window.scores >= thresholds
        starts[above & (run == 0)] = window.start
        runs += run[~above & (run > 0)].tolist()
        run = np.where(above, run + 1, 0)
        events += [(int(i), window.index, float(starts[i])) for i in np.flatnonzero(run == n)]
    return events, runs + run[run > 0].tolist()


@pytest.mark.parametrize("multi_label", [False, True])
def test_events_fire_after_n_windows_above_threshold_and_not_before(trained, multi_label):
    """Low tone 2 s, a high-tone burst of 0.5 s (runs shorter than N), noise 2 s, high tone 2.5 s; N = 3.
    Multi-label: sigmoid scores against per-label thresholds from the config. (The tiny trained model is not
    confident: its softmax scores are 0.38-0.55 for the right label, hence the low thresholds.)"""
    classifier, threshold = trained, 0.36
    if multi_label:
        classifier = AudioClassifier(trained.backend, trained.feature_extractor)
        classifier.config = type(trained.config).from_dict(
            {**trained.config.to_dict(), "problem_type": "multi_label_classification",
             "label_thresholds": {"high": 0.52, "low": 0.5}})
        threshold = 0.5
    rng = np.random.default_rng(3)
    parts = [("low", 2.0), ("high", 0.5), ("noise", 2.0), ("high", 2.5)]
    audio = np.concatenate([synth_clip(kind, rng, 16000, seconds) for kind, seconds in parts])
    stream = StreamingClassifier(classifier, 0.5, 0.25, min_windows=3, threshold=threshold)
    windows = list(stream.process(random_chunks(audio, seed=4, largest=6000)))
    thresholds = label_thresholds(classifier.config, threshold)
    fired = [(classifier.config.label2id[e.label], w.index, e.start) for w in windows for e in w.events]
    expected, runs = expected_events(windows, thresholds, 3)
    assert fired == expected
    assert any(0 < run < 3 for run in runs) and any(run >= 3 for run in runs)  # both cases happen
    assert {classifier.id2label[i] for i, _, _ in fired} == {"low", "high", "noise"}
    assert all(e.windows == 3 for w in windows for e in w.events) and stream.stats.events == len(fired)
    for window in windows:
        for event in window.events:
            assert event.end == window.end and event.end - event.start == pytest.approx(0.5 + 2 * 0.25)
    if multi_label:
        assert thresholds.tolist() == pytest.approx(
            [{"low": 0.5, "high": 0.52}.get(classifier.id2label[i], 0.5) for i in range(3)])
        assert [w.active_labels for w in windows] == [
            [classifier.id2label[i] for i in range(3) if w.scores[i] >= [0.52, 0.5, 0.5][i]] for w in windows]
        assert any(w.active_labels for w in windows)


class CountingBackend:
    """The real backend, counting the clips it is asked to classify."""

    def __init__(self, backend):
        self.backend, self.config, self.name, self.clips = backend, backend.config, backend.name, 0

    def logits(self, inputs):
        self.clips += len(inputs["input_values"])
        return self.backend.logits(inputs)


def test_energy_vad_skips_silent_windows_without_calling_the_model(trained):
    """Silence (digital zeros and -80 dB hiss) around tones on the hop grid: windows wholly in silence are
    skipped and counted, the model sees exactly the others, and their scores are those without the gate."""
    counting = CountingBackend(trained.backend)
    classifier = AudioClassifier(counting, trained.feature_extractor)
    rng = np.random.default_rng(5)
    hiss = lambda seconds: (1e-4 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    parts = [np.zeros(16000, np.float32), synth_clip("low", rng, 16000, 1.0), hiss(2.0),
             synth_clip("high", rng, 16000, 1.5), np.zeros(8000, np.float32)]
    audio = np.concatenate(parts)
    loud = np.zeros(len(audio), bool)
    loud[16000:32000] = loud[64000:88000] = True
    stream = StreamingClassifier(classifier, 0.5, 0.25, vad="energy", min_windows=2)
    windows = list(stream.process(random_chunks(audio, seed=6)))
    silent = [not loud[int(w.start * 16000) : int(w.end * 16000)].any() for w in windows]
    assert [w.skipped for w in windows] == silent and sum(silent) >= 10
    assert stream.stats.skipped == sum(silent) and stream.stats.classified == len(windows) - sum(silent)
    assert counting.clips == stream.stats.classified
    ungated = list(StreamingClassifier(trained, 0.5, 0.25).process([audio]))
    kept = [(w, u) for w, u in zip(windows, ungated) if not w.skipped]
    np.testing.assert_allclose(scores([w for w, _ in kept]), scores([u for _, u in kept]), atol=1e-6)
    assert all(w.scores is None and not w.events for w in windows if w.skipped)


def test_energy_vad_noise_floor_adapts_to_steady_background():
    vad, rng = EnergyVAD(rise_db_per_second=2.0), np.random.default_rng(0)
    background = lambda: (0.05 * rng.standard_normal(8000)).astype(np.float32)  # about -26 dB
    decisions = [vad.is_active(background(), 16000, 0.5) for _ in range(120)]  # a minute of it
    assert decisions[0] and not decisions[-1]  # loud at first against the -60 dB floor, then the floor
    tone = (0.5 * np.sin(2 * np.pi * 500 * np.arange(8000) / 16000)).astype(np.float32) + background()
    assert vad.is_active(tone, 16000, 0.5)


def test_model_vad_counts_silence_class_windows_as_inactive(trained):
    """With `noise` as the silence class: its windows are inactive (counted), break runs, never fire."""
    rng = np.random.default_rng(7)
    audio = np.concatenate([synth_clip(k, rng, 16000, s) for k, s in [("low", 1.5), ("noise", 2.0), ("high", 1.5)]])
    stream = StreamingClassifier(trained, 0.5, 0.25, vad="model", silence_labels=["noise"], min_windows=2)
    windows = list(stream.process([audio]))
    top = [trained.id2label[int(np.argmax(w.scores))] for w in windows]
    assert [w.inactive for w in windows] == [label == "noise" for label in top] and "noise" in top
    assert stream.stats.inactive == top.count("noise") and stream.stats.classified == len(windows)
    assert {e.label for w in windows for e in w.events} <= {"low", "high"}
    with pytest.raises(ValueError, match=r"needs a silence class.*\['high', 'low', 'noise'\]"):
        StreamingClassifier(trained, vad="model")


def test_stream_scales_integer_pcm_and_refuses_what_it_cannot_read(trained):
    """int32 PCM was left unscaled (only int16 was scaled), so the energy gate let a whisper through as loud;
    a channels-first chunk was averaged into a few samples, an input rate of 0 taken as the model's."""
    quiet = 1e-4 * synth_clip("low", np.random.default_rng(3), 16000, 1.0)
    for chunk in (quiet, np.round(quiet * 2**31).astype(np.int32), np.round(quiet * 32767).astype(np.int16)):
        windows = list(StreamingClassifier(trained, 0.5, 0.25, vad="energy").process([chunk]))
        assert windows and all(w.skipped for w in windows)
    stream = StreamingClassifier(trained, 0.5, 0.25)
    with pytest.raises(UsageError, match=r"stream at 0\.0 s: shape \(2, 16000\) is not \[n\] or \[n, channels\]"):
        stream.feed(np.stack([quiet, quiet]))
    with pytest.raises(UsageError, match=r"stream at 0\.0 s: audio contains NaN"):
        stream.feed(np.full(10, np.nan))
    with pytest.raises(UsageError, match="input_rate must be a positive"):
        StreamingClassifier(trained, input_rate=0)


def test_pcm_decoder_keeps_partial_frames():
    decode = PcmDecoder(PcmFormat("s16le", 16000, 2))
    data = np.array([[1000, -1000], [2000, -2000], [3000, 0]], dtype="<i2").tobytes()
    parts = [decode(data[:5]), decode(data[5:7]), decode(data[7:])]
    assert [len(p) for p in parts] == [1, 0, 2]
    np.testing.assert_allclose(np.concatenate(parts) * 32768, [[1000, -1000], [2000, -2000], [3000, 0]])


def stream_audio(seed: int = 9) -> np.ndarray:
    """Stereo 8 kHz: low tone 2 s, high tone 2 s (left), silence in the right channel."""
    rng = np.random.default_rng(seed)
    mono = np.concatenate([synth_clip("low", rng, 8000, 2.0), synth_clip("high", rng, 8000, 2.0)])
    return np.stack([mono, np.zeros_like(mono)], axis=1)


def test_stream_command_reads_raw_pcm_on_stdin(trained_cnn, trained):
    audio = np.round(stream_audio() * 32767).astype("<i2")
    command = [sys.executable, "-m", "hfspeech.cli", "stream", str(trained_cnn), "--format", "s16le", "--rate", "8000",
               "--channels", "2", "--min-windows", "3", "--window-seconds", "0.5", "--hop-seconds", "0.25",
               "--windows", "--top-k", "3", "--threshold", "0.36"]
    done = subprocess.run(command, input=audio.tobytes(), capture_output=True, check=True)
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    expected = list(StreamingClassifier(trained, 0.5, 0.25, input_rate=8000, min_windows=3, threshold=0.36).process(
        random_chunks(audio, seed=1)))
    windows = [line for line in lines if line["event"] == "window"]
    assert len(windows) == len(expected) > 10
    for line, window in zip(windows, expected):
        assert line["labels"] == [label for label, _ in window.top(trained.id2label, 3)]
        np.testing.assert_allclose(line["scores"], [s for _, s in window.top(trained.id2label, 3)], atol=1e-4)
    events = [line for line in lines if line["event"] == "label"]
    assert [(e["label"], e["start"]) for e in events] == [(e.label, e.start) for w in expected for e in w.events]
    assert events  # the comparison above is not between two empty lists
    assert lines[-1] == {"event": "end", "windows": len(expected), "classified": len(expected), "skipped": 0,
                         "inactive": 0, "events": len(events), "samples": lines[-1]["samples"]}
    assert abs(lines[-1]["samples"] - 2 * len(audio)) <= 1


def test_stream_follows_a_growing_wav_with_an_onnx_model(trained_cnn, trained, tmp_path, capsys):
    """A WAV written while `hfspeech stream --follow` reads it, classified by the ONNX export: the same
    windows and events as the PyTorch model on the finished file."""
    from hfspeech.export import export_onnx

    onnx_path = export_onnx(trained_cnn, tmp_path / "onnx")
    audio = stream_audio(11)
    path = tmp_path / "recording.wav"

    def record():
        with sf.SoundFile(path, "w", 8000, 2, "PCM_16") as f:
            for chunk in random_chunks(audio, seed=2, largest=4000):
                f.write(chunk)
                f.flush()
                time.sleep(0.01)

    recorder = threading.Thread(target=record)
    recorder.start()
    while not path.exists():
        time.sleep(0.005)
    try:
        assert cli(["stream", str(onnx_path), "--follow", str(path), "--idle-timeout", "1.0", "--poll-seconds", "0.02",
                    "--min-windows", "3", "--window-seconds", "0.5", "--hop-seconds", "0.25", "--windows",
                    "--threshold", "0.36"]) == 0
    finally:
        recorder.join()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pcm = np.round(audio * 32767).astype(np.int16)  # what the recording holds
    expected = list(StreamingClassifier(trained, 0.5, 0.25, input_rate=8000, min_windows=3, threshold=0.36).process(
        [pcm]))
    assert any(w.events for w in expected)
    windows = [line for line in lines if line["event"] == "window"]
    assert len(windows) == len(expected)
    for line, window in zip(windows, expected):
        np.testing.assert_allclose(line["scores"], [s for _, s in window.top(trained.id2label, 3)], atol=1e-4)
    assert [(l["label"], l["start"]) for l in lines if l["event"] == "label"] == \
        [(e.label, e.start) for w in expected for e in w.events]
    onnx = AudioClassifier.from_pretrained(str(onnx_path))
    assert onnx.backend.name == "onnx"
    in_process = list(StreamingClassifier(onnx, 0.5, 0.25, input_rate=8000).process(random_chunks(pcm, seed=5)))
    np.testing.assert_allclose(scores(in_process), scores(expected), atol=1e-4)


def test_stream_help_and_errors(trained_cnn, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["stream", "--help"])
    assert exit_info.value.code == 0 and "--min-windows" in capsys.readouterr().out
    assert cli(["stream", str(trained_cnn), "--vad", "model"]) == 2
    assert "needs a silence class" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--window_seconds", "-1"], ["--hop_seconds", "0"], ["--rate", "0"],
                                   ["--top_k", "0"], ["--threshold", "2"], ["--threshold", "-0.1"]])
def test_stream_refuses_sizes_that_are_not_positive(flags, tmp_path, capsys):
    # Parsed before any model loads: `--window_seconds -1` once streamed one-sample windows, `--rate 0` the default.
    with pytest.raises(SystemExit) as exit_info:
        cli(["stream", str(tmp_path / "absent"), *flags])
    err = capsys.readouterr().err
    expected = "must be 0 to 1" if flags[0] == "--threshold" else "must be above 0"
    assert exit_info.value.code == 2 and f"argument {flags[0]}" in err and expected in err, err


def test_stream_names_a_missing_followed_file_before_the_model_loads(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["stream", str(tmp_path / "absent-model"), "--follow", str(tmp_path / "later.wav")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"--follow {tmp_path / 'later.wav'}: no such file" in err, err
