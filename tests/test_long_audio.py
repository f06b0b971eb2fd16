"""Long files in bounded memory: chunked reading and windowing, aggregation, timelines, multi-label scores.

`AudioClassifier.classify_file` reads a file chunk by chunk and classifies windows as they complete; these
tests check that its windows are exactly those of the whole-file path (`classify_waveform` on
`decode_audio`), that its peak memory does not grow with the file's length (while whole-file decoding
does), and what `predict --aggregate` and `--timeline` make of the windows.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from hfspeech.cli import main as cli
from hfspeech.data.audio import decode_audio, downmix_to_mono, iter_audio_chunks
from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.windows import split_windows, window_starts
from hfspeech.models.scores import scores_from_logits
from hfspeech.inference.windows import WindowSlicer
from tests.conftest import save_random_baseline, synth_clip

LABELS = ["low", "high", "noise"]


def save_random_cnn(folder: Path) -> Path:
    """A small random CNN with O(1) logits (wide init), so score differences of 1e-4 are visible."""
    return save_random_baseline(folder, "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


@pytest.fixture(scope="module")
def random_cnn(tmp_path_factory) -> Path:
    return save_random_cnn(tmp_path_factory.mktemp("random") / "cnn")


@pytest.fixture(scope="module")
def classifier(random_cnn) -> AudioClassifier:
    return AudioClassifier.from_pretrained(str(random_cnn), device=torch.device("cpu"))


def tone_pattern(rate: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A chirp, noise bursts and a square-gated tone: every window's scores differ from its neighbours'."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    left = 0.3 * np.sin(2 * np.pi * 300 * t * (1 + t / 20)) + 0.05 * rng.standard_normal(n)
    right = 0.2 * (np.sin(2 * np.pi * 0.7 * t) > 0) * np.sin(2 * np.pi * 1500 * t) + 0.02 * rng.standard_normal(n)
    return np.stack([left, right], axis=1)[:, :channels].astype(np.float32)


def scores(windows) -> np.ndarray:
    return np.stack([w.scores for w in windows])


@pytest.mark.parametrize("lengths,window,hop", [
    ([0, 1, 50, 1049], 400, 300), ([7, 3, 1040], 400, 100), ([399], 400, 200), ([400], 400, 200),
    ([401], 400, 200), ([5000], 300, 700), ([13] * 100, 64, 16)])
def test_window_slicer_cuts_what_split_windows_cuts(lengths, window, hop):
    """Whatever the chunking: same starts, same samples, for short, exact, gapped (hop > window) streams."""
    rng = np.random.default_rng(0)
    waveform = rng.standard_normal(sum(lengths)).astype(np.float32)
    slicer, got, position = WindowSlicer(window, hop), [], 0
    for length in lengths:
        got += slicer.push(waveform[position : position + length])
        position += length
    got += slicer.finish()
    expected = split_windows(waveform, 1, window, hop)
    assert [start for start, _ in got] == window_starts(len(waveform), window, hop)
    assert len(got) == len(expected)
    for (_, a), b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert slicer.ring.nbytes == 4 * window  # the whole state: one window


@pytest.mark.parametrize("channels,extension,chunk_seconds", [(1, "wav", 1), (2, "wav", 3), (2, "flac", 2)])
def test_chunked_windows_equal_whole_file_windows(classifier, tmp_path, channels, extension, chunk_seconds):
    """At the model's rate: the same windows and scores as decoding the whole file (within 1e-4; in fact
    equal), for mono, stereo (ffmpeg's downmix either way) and flac, across many chunk boundaries."""
    path = tmp_path / f"long.{extension}"
    sf.write(path, tone_pattern(16000, 13.37, channels), 16000)
    chunked = list(classifier.iter_windows(str(path), 0.5, 0.2, chunk_seconds=chunk_seconds))
    whole = classifier.classify_waveform(decode_audio(str(path), 16000), window_seconds=0.5, hop_seconds=0.2)
    assert [(w.start, w.end) for w in chunked] == [(w.start, w.end) for w in whole.windows]
    assert len(chunked) == len(split_windows(np.zeros(int(16000 * 13.37)), 16000, 0.5, 0.2)) > 60
    assert np.ptp(scores(chunked)[:, 0]) > 0.01  # windows that differ from each other
    np.testing.assert_allclose(scores(chunked), scores(whole.windows), atol=1e-4, rtol=0)


def test_resampled_file_equals_soxr_on_the_whole_file_and_stays_near_ffmpeg(classifier, tmp_path):
    """An 8 kHz stereo file for a 16 kHz model: chunks resampled in a stream (soxr) give exactly the windows of
    the whole file resampled by soxr in one go (what `decode_audio` does for files libsndfile reads). Against
    ffmpeg's resampler (torchcodec decoding the whole file, `decode_audio`'s other path) the filter differs:
    window scores differ by up to 0.06 (measured 0.039 on this file; 0.032 for the file's mean)."""
    path = tmp_path / "narrowband.wav"
    sf.write(path, tone_pattern(8000, 9.1, channels=2), 8000)
    chunked = list(classifier.iter_windows(str(path), 0.5, 0.25, chunk_seconds=2))
    stereo, _ = sf.read(path, dtype="float32")
    one_go = soxr.resample(downmix_to_mono(stereo), 8000, 16000)
    reference = classifier.classify_waveform(one_go, window_seconds=0.5, hop_seconds=0.25)
    np.testing.assert_allclose(scores(chunked), scores(reference.windows), atol=1e-4, rtol=0)
    from torchcodec.decoders import AudioDecoder

    ffmpeg_waveform = AudioDecoder(str(path), sample_rate=16000, num_channels=1).get_all_samples().data.numpy()[0]
    for waveform in (ffmpeg_waveform, decode_audio(str(path), 16000)):
        whole = classifier.classify_waveform(waveform, window_seconds=0.5, hop_seconds=0.25)
        assert len(whole.windows) == len(chunked)
        difference = np.abs(scores(chunked) - scores(whole.windows))
        assert difference.max() < 0.06 and np.abs(difference.mean(0)).max() < 0.05


def test_iter_audio_chunks_names_bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 20)
    for name, problem in (("missing.wav", "file not found"), ("empty.wav", "file is empty"),
                          ("junk.wav", "cannot be decoded as audio")):
        with pytest.raises(ValueError, match=f"{name}: {problem}"):
            list(iter_audio_chunks(tmp_path / name, 16000))


MEMORY_PROBE = r"""
import json, re, sys, tracemalloc
import numpy as np, torch
from hfspeech.data.audio import decode_audio
from hfspeech.inference.classifier import AudioClassifier

def status(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1))

def rss_growth_mb(run):
    open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM, the peak resident set, to the current RSS
    before = status("VmRSS")
    run()
    return (status("VmHWM") - before) / 1024

model, warmup, files = sys.argv[1], sys.argv[2], sys.argv[3:]
torch.set_num_threads(1)  # one thread, one malloc arena: less allocator noise in the RSS
classifier = AudioClassifier.from_pretrained(model, device=torch.device("cpu"), batch_size=4)
# Every sample is decoded and resampled; a window every 10 s keeps the model's share of the time small.
windows = dict(window_seconds=0.25, hop_seconds=10.0)
chunked = lambda path: lambda: classifier.classify_file(path, **windows)
whole = lambda path: lambda: classifier.classify_waveform(decode_audio(path, 16000), **windows)
chunked(warmup)(), whole(warmup)()  # load every library, allocate the model's buffers, fill a whole chunk
result = {}
for name, make in (("chunked", chunked), ("whole", whole)):
    result[name] = [rss_growth_mb(make(path)) for path in files]  # the short file first: memory it leaves
    # behind can only hide growth of the long one's, not inflate it
tracemalloc.start()
result["chunked_traced"] = []
for path in files:
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    chunked(path)()
    result["chunked_traced"].append((tracemalloc.get_traced_memory()[1] - base) / 2**20)
print(json.dumps(result))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_peak_memory_does_not_grow_with_the_files_length(random_cnn, tmp_path):
    """A 10-minute file needs < 1.5x the peak memory of a 1-minute one, chunked; decoded whole, ~10x (which is
    what makes this test able to fail). Measured in a fresh process: growth of the peak resident set
    (VmHWM, reset before each run) over the resident set before it, and the peak of numpy/Python
    allocations (tracemalloc). 8 kHz files keep the 10-minute one at 9.6 MB; the 16 kHz model resamples."""
    rng = np.random.default_rng(0)
    one_minute = (0.3 * np.sin(2 * np.pi * 440 * np.arange(60 * 8000) / 8000)
                  + 0.05 * rng.standard_normal(60 * 8000)).astype(np.float32)
    paths = {}
    for name, minutes in (("ten", 10), ("one", 1), ("warmup", 25 / 60)):
        paths[name] = tmp_path / f"{name}.wav"
        with sf.SoundFile(paths[name], "w", 8000, 1, "PCM_16") as f:
            for _ in range(int(minutes)):
                f.write(one_minute)
            if minutes < 1:
                f.write(one_minute[: int(minutes * 60 * 8000)])
    command = [sys.executable, "-c", MEMORY_PROBE, str(random_cnn), str(paths["warmup"]), str(paths["one"]),
               str(paths["ten"])]
    measured = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    print(json.dumps(measured))
    # RSS growth below 4 MB is allocator noise (measured 0.2-3.5 MB for either file; the 10-minute whole-file
    # decode: 55 MB). Below that floor, the ratio of two noise readings would mean nothing.
    (one, ten), (whole_one, whole_ten) = (np.maximum(measured[k], 4.0) for k in ("chunked", "whole"))
    assert ten < 1.5 * one
    assert whole_ten > 1.5 * whole_one and whole_ten > 30  # the same check fails for a whole-file decode
    # Traced peaks of about 1 MB vary by 0.3 MB run to run (0.69-0.97 MB for the 1-minute file, 1.03-1.05 for the
    # 10-minute one, at 8118547 as at later commits): the 1.5x ratio failed one run in four. A 2 MB floor, as
    # for the RSS: the 10-minute file decoded whole is 38 MB of float32 at 16 kHz, far above it.
    traced_one, traced_ten = np.maximum(measured["chunked_traced"], 2.0)
    assert traced_ten < 1.5 * traced_one


@pytest.fixture(scope="module")
def tone_sequence(tmp_path_factory) -> tuple[Path, list[str]]:
    """6 s low tone, 3 s high tone, 1.5 s noise, as 0.5 s clips (the trained model's window)."""
    rng = np.random.default_rng(11)
    kinds = ["low"] * 12 + ["high"] * 6 + ["noise"] * 3
    path = tmp_path_factory.mktemp("sequence") / "sequence.wav"
    sf.write(path, np.concatenate([synth_clip(kind, rng, 16000, 0.5) for kind in kinds]), 16000)
    return path, kinds


def test_aggregation_modes(trained_cnn, tone_sequence):
    path, kinds = tone_sequence
    classifier = AudioClassifier.from_pretrained(str(trained_cnn), device=torch.device("cpu"))
    results = {mode: classifier.classify_file(str(path), top_k=3, window_seconds=0.5, hop_seconds=0.5, aggregate=mode)
               for mode in ("mean", "max", "vote")}
    windows = scores(results["mean"].windows)
    assert len(windows) == len(kinds)
    assert [classifier.id2label[int(i)] for i in windows.argmax(1)] == kinds  # the model knows every clip
    for mode, expected in (("mean", windows.mean(0)), ("max", windows.max(0)),
                           ("vote", np.array([kinds.count(classifier.id2label[i]) / len(kinds) for i in range(3)]))):
        prediction = results[mode]
        assert prediction.aggregate == mode and prediction.num_windows == len(kinds)
        got = dict(zip(prediction.labels, prediction.scores))
        np.testing.assert_allclose([got[classifier.id2label[i]] for i in range(3)], expected, atol=1e-6)
    assert results["vote"].labels == ["low", "high", "noise"]
    with pytest.raises(ValueError, match="aggregate must be one of"):
        classifier.classify_file(str(path), aggregate="median")


def test_predict_writes_a_timeline_consistent_with_the_windows(trained_cnn, tone_sequence, tmp_path, capsys):
    path, kinds = tone_sequence
    out = tmp_path / "timeline"
    assert cli(["predict", str(trained_cnn), str(path), "--window-seconds", "1.0", "--hop-seconds", "0.5",
                "--aggregate", "vote", "--timeline", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["aggregate"] == "vote" and printed["predictions"][0]["label"] == "low"
    document = json.loads((out / "sequence.timeline.json").read_text())
    starts = window_starts(len(kinds) * 8000, 16000, 8000)
    assert [w["start"] for w in document["windows"]] == [s / 16000 for s in starts]
    assert [w["end"] for w in document["windows"]] == [s / 16000 + 1.0 for s in starts]
    assert document["num_windows"] == len(starts) == len(document["scores"])
    expected = AudioClassifier.from_pretrained(str(trained_cnn)).classify_waveform(
        decode_audio(str(path), 16000), window_seconds=1.0, hop_seconds=0.5)
    np.testing.assert_allclose(document["scores"], scores(expected.windows), atol=1e-5)
    assert [w["labels"][0] for w in document["windows"]][:6] == ["low"] * 6
    with open(out / "sequence.timeline.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(starts)
    for row, window, score_row in zip(rows, document["windows"], document["scores"]):
        assert float(row["start"]) == pytest.approx(window["start"]) and row["top_label"] == window["labels"][0]
        assert [float(row[label]) for label in document["labels"]] == pytest.approx(score_row, abs=1e-6)
    import matplotlib.image

    image = matplotlib.image.imread(out / "sequence.timeline.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 500 and np.ptp(image) > 0.5


@pytest.fixture(scope="module")
def multi_label_cnn(trained_cnn, tmp_path_factory) -> Path:
    """The trained CNN with its config set to multi-label by hand, with a threshold for one label."""
    folder = tmp_path_factory.mktemp("multilabel") / "cnn"
    shutil.copytree(trained_cnn, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(problem_type="multi_label_classification", label_thresholds={"high": 0.9, "noise": 0.2})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_multi_label_scores_are_sigmoids_and_active_labels_follow_thresholds(multi_label_cnn, tone_sequence,
                                                                             tmp_path, capsys):
    path, _ = tone_sequence
    classifier = AudioClassifier.from_pretrained(str(multi_label_cnn), device=torch.device("cpu"))
    waveform = decode_audio(str(path), 16000)
    clips = split_windows(waveform, 16000, 0.5, 0.5)
    logits = classifier.logits(clips)
    probabilities = classifier.predict_proba(clips)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert np.abs(probabilities.sum(1) - 1).max() > 0.1  # not a softmax
    single = json.loads((multi_label_cnn / "config.json").read_text())
    assert np.allclose(scores_from_logits(logits, type("C", (), {"problem_type": None})()),
                       torch.softmax(torch.from_numpy(logits), -1).numpy())
    thresholds = np.array([{"high": 0.9, "noise": 0.2}.get(single["id2label"][str(i)], 0.5) for i in range(3)])
    prediction = classifier.classify_file(str(path), window_seconds=0.5, hop_seconds=0.5)
    for window, row in zip(prediction.windows, probabilities):
        assert window.active_labels == [single["id2label"][str(i)] for i in range(3) if row[i] >= thresholds[i]]
    mean = probabilities.mean(0)
    assert prediction.active_labels == [single["id2label"][str(i)] for i in range(3) if mean[i] >= thresholds[i]]
    assert any(w.active_labels for w in prediction.windows)
    out = tmp_path / "timeline"
    assert cli(["predict", str(multi_label_cnn), str(path), "--window-seconds", "0.5", "--hop-seconds", "0.5",
                "--timeline", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["active_labels"] == prediction.active_labels
    document = json.loads((out / "sequence.timeline.json").read_text())
    assert [w["active_labels"] for w in document["windows"]] == [w.active_labels for w in prediction.windows]


def test_single_label_predictions_have_no_active_labels(classifier, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, tone_pattern(16000, 2.0), 16000)
    prediction = classifier.classify_file(str(path))
    assert prediction.active_labels == [] and all(w.active_labels == [] for w in prediction.windows)
    assert sum(prediction.scores) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("subtype,dtype", [("PCM_16", "int16"), ("PCM_32", "int32"), ("FLOAT", "float32")])
def test_an_array_in_memory_is_classified_as_the_same_file(classifier, tmp_path, subtype, dtype):
    """44.1 kHz stereo integer PCM from a notebook: scaled, downmixed and resampled as `decode_audio` treats the
    file (it was taken as one 16 kHz channel, interleaved, with sampling_rate not even a parameter)."""
    path = tmp_path / f"clip_{dtype}.wav"
    sf.write(path, tone_pattern(44100, 1.5, channels=2), 44100, subtype=subtype)
    samples, _ = sf.read(path, dtype=dtype, always_2d=True)
    in_memory = classifier.score_waveform(samples, sampling_rate=44100, hop_seconds=0.25)
    np.testing.assert_allclose(in_memory.scores, classifier.score_file(path, hop_seconds=0.25).scores, atol=1e-6)
    assert len(in_memory.windows) == 5


@pytest.mark.parametrize("call,match", [
    (lambda c, x: c.classify_waveform(x[:0]), "zero length"),
    (lambda c, x: c.classify_waveform(np.where(np.arange(len(x)) == 5, np.nan, x)), "NaN or infinite"),
    (lambda c, x: c.classify_waveform(x[0]), r"\[n\] or \[n, channels\], got shape \(\)"),
    (lambda c, x: c.classify_waveform(x.reshape(2, 2, -1)), "got shape"),
    (lambda c, x: c.classify_waveform(np.stack([x, x])), r"shape \(2, 8000\).*waveform\.T"),
    (lambda c, x: c.classify_waveform([x, x[:100]]), "list of 2 clips"),
    (lambda c, x: c.classify_waveform((x * 100).astype(np.int64)), "int64 have no PCM full scale"),
    (lambda c, x: c.classify_waveform("clip.wav"), "got a path.*classify_file"),
    (lambda c, x: c.classify_waveform(b"RIFF...."), "got bytes.*decode_audio"),
    (lambda c, x: c.classify_file(x), "expected a file path, got ndarray.*classify_waveform"),
    (lambda c, x: c.classify_waveform(x, sampling_rate=0), "sampling_rate must be a positive"),
    (lambda c, x: c.classify_waveform(x, sampling_rate=-16000), "sampling_rate must be a positive"),
    (lambda c, x: c.classify_waveform(x, top_k=0), "top_k must be .* at least 1, got 0"),
    (lambda c, x: c.classify_waveform(x, window_seconds=-1), "window_seconds must be positive"),
    (lambda c, x: c.classify_waveform(x, window_seconds=0), "window_seconds must be positive"),
    (lambda c, x: c.classify_waveform(x, hop_seconds=-0.1), "hop_seconds must be positive"),
    (lambda c, x: c.predict_proba([x, x[:0]]), "waveform 1: audio has zero length"),
])
def test_bad_audio_in_memory_is_one_usage_error(classifier, call, match):
    """Each of these gave scores (flat ones for an empty clip or 1-sample windows), a torch or numpy error,
    or 'file not found' for an array's repr; now one line that names the problem."""
    with pytest.raises(UsageError, match=match):
        call(classifier, tone_pattern(16000, 0.5)[:, 0])
