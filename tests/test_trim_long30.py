"""A model trained with --trim_silence reads a long file in bounded memory (`data.samples.TrimMeter`, then a second
read of the kept span): the same span and scores as the whole file's trim, in the decoding thread, and a progress
bar that counts the seconds trimmed away."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import synth_clip
from test_trim30 import RATE, tiny_model


@pytest.fixture(scope="module")
def long_take(tmp_path_factory) -> Path:
    """40 s: 12 s of a quiet room, a tone, more tones, then 15 s of the quiet room (chunks of 10 s cut through it)."""
    rng = np.random.default_rng(2)
    quiet = lambda seconds: 1e-4 * rng.standard_normal(int(seconds * RATE)).astype(np.float32)  # noqa: E731
    sound = np.concatenate([synth_clip(kind, rng, RATE, seconds=1.0) for kind in ("low", "high", "noise")] * 4)
    path = tmp_path_factory.mktemp("long") / "take.wav"
    sf.write(path, np.concatenate([quiet(12.3), sound, quiet(15.7)]), RATE, subtype="FLOAT")
    return path


def test_a_long_file_is_trimmed_chunk_by_chunk_as_it_would_be_whole(tmp_path, long_take):
    from hfspeech.data.samples import TrimMeter, trim_span
    from hfspeech.inference.classifier import AudioClassifier

    whole = sf.read(long_take, dtype="float32")[0]
    meter = TrimMeter()
    for start in range(0, whole.size, 7919):  # any chunk size: frames straddle the chunks' edges
        meter.push(whole[start : start + 7919])
    assert meter.span(40.0) == trim_span(whole, 40.0) and 12.2 < trim_span(whole, 40.0)[0] / RATE < 12.3
    classifier = AudioClassifier.from_pretrained(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    from hfspeech.inference.batch import score_files

    [(_, from_file)] = score_files(classifier, [str(long_take)], chunk_seconds=3)
    in_memory = classifier.score_waveform(whole)
    assert from_file.scores == pytest.approx(in_memory.scores, abs=1e-5)
    assert [w.start for w in from_file.windows] == [w.start for w in in_memory.windows]


def traced_peak(classifier, path: Path) -> int:
    """Peak traced allocation (every thread's) while `iter_windows` classifies `path` in 2-s chunks."""
    import tracemalloc

    list(classifier.iter_windows(str(path), chunk_seconds=2))  # lazy imports and caches first
    tracemalloc.start()
    try:
        list(classifier.iter_windows(str(path), chunk_seconds=2))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_file_is_not_held_whole_to_be_trimmed(tmp_path, long_take):
    """A trimmed model reads a file in the memory an untrimmed one needs (measured 1.37x and 1.44x the 2.6-MB
    file, chunks and model); held whole, with librosa's framed copy of it, it was 6.1x."""
    from hfspeech.inference.classifier import AudioClassifier

    trimmed, plain = (AudioClassifier.from_pretrained(str(tiny_model(tmp_path / name, **values)))
                      for name, values in (("trimmed", {"trim_silence_top_db": 40.0}), ("plain", {})))
    assert traced_peak(trimmed, long_take) < 1.5 * traced_peak(plain, long_take)


def test_iter_windows_reads_and_trims_in_its_prefetching_thread(tmp_path, long_take, monkeypatch):
    """The file is decoded (and measured for the trim) as `iter_windows` says: ahead, in `prefetched`'s thread."""
    from hfspeech.inference import batch
    from hfspeech.inference.classifier import AudioClassifier

    decode, threads = batch.iter_audio_chunks, []

    def watched(*args, **kwargs):
        for chunk in decode(*args, **kwargs):
            threads.append(threading.current_thread().name)
            yield chunk

    monkeypatch.setattr(batch, "iter_audio_chunks", watched)
    classifier = AudioClassifier.from_pretrained(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    next(classifier.iter_windows(str(long_take)))
    assert threads and set(threads) == {"hfspeech-prefetch"}


def test_the_progress_bar_counts_the_seconds_trimmed_away(tmp_path, long_take, capsys):
    from hfspeech.inference.batch import score_files
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    list(score_files(classifier, [str(long_take), str(long_take)], progress=True))
    assert "| 80/80 s" in capsys.readouterr().err
