"""A long clip prepared for training is held about once, not two or three times over (`data.mono_read`,
`data.prepare`).

Training on 24 short clips and one hour of 8 kHz audio (230 MB decoded at 16 kHz) peaked at 1.21 GB of RSS against
663 MB without it; three hours at 16 kHz at 2.55 GB. The read held the list of its blocks and their concatenation,
and `datasets`' writer copied a numpy waveform twice (`np.array`, `flatten`) before joining it. Here the same paths
with a two-minute clip read in small blocks (many of them, as an hour is), measured by tracemalloc (numpy's
allocations) and by a fresh Arrow memory pool (the writer's), and the samples must stay the whole read's, bit for
bit.
"""

from __future__ import annotations

import tracemalloc

import datasets
import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
import soxr
from datasets import Audio, Dataset, DatasetDict

from hfspeech.data import mono_read
from hfspeech.data.prepare import prepare_dataset
from hfspeech.data.samples import downmix_to_mono

SECONDS = 120


def write_tone(path, rate: int, channels: int = 1) -> str:
    samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SECONDS * rate) / rate)
    sf.write(path, np.stack([samples, -0.5 * samples], 1)[:, :channels], rate, subtype="PCM_16")
    return str(path)


def read_mono(path: str, sampling_rate: int, frames=None):
    with sf.SoundFile(path) as opened:
        return mono_read.read_mono(opened, opened.frames if frames is None else frames, sampling_rate, path)


def peak_of(work):
    """(`work()`'s result, the peak of memory traced while it ran)."""
    tracemalloc.start()
    try:
        return work(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_blocks(monkeypatch, tmp_path):
    monkeypatch.setattr(mono_read, "BLOCK_SAMPLES", 1 << 15)  # a two-minute clip in 59 blocks (an hour's are 4 MB)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))  # the decoded clips: not the user's


def test_a_long_read_holds_its_waveform_once_not_its_blocks_and_their_join(tmp_path, small_blocks):
    path = write_tone(tmp_path / "two_minutes.wav", 16000)
    waveform, peak = peak_of(lambda: read_mono(path, 16000))
    assert waveform.size == SECONDS * 16000
    assert peak < 1.3 * waveform.nbytes  # was 2x: the blocks' mono list and its concatenation


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 2), (16000, 2)])
def test_a_read_into_one_array_is_the_whole_reads_samples_bit_for_bit(tmp_path, small_blocks, rate, channels):
    path = write_tone(tmp_path / "clip.wav", rate, channels)
    whole = downmix_to_mono(sf.read(path, dtype="float32", always_2d=True)[0])
    expected = whole if rate == 16000 else soxr.resample(whole, rate, 16000, quality="HQ")
    waveform = read_mono(path, 16000)
    assert waveform.dtype == np.float32 and waveform.shape == expected.shape
    assert np.array_equal(waveform, expected)


def test_a_file_shorter_than_the_frames_asked_for_gives_what_it_holds(tmp_path, small_blocks):
    path = write_tone(tmp_path / "clip.wav", 8000)
    whole = read_mono(path, 16000)
    with sf.SoundFile(path) as opened:
        asked = 3 * opened.frames  # a header that declares more than the file holds
    short = read_mono(path, 16000, frames=asked)
    assert np.array_equal(short, whole)
    assert short.base is None or short.base.nbytes < 2 * whole.nbytes  # not a view into a buffer 3x its size


def test_preparing_a_long_clip_makes_no_numpy_copies_of_it_for_arrow(tmp_path, small_blocks):
    path = write_tone(tmp_path / "two_minutes.wav", 16000)
    split = Dataset.from_dict({"audio": [path], "label": [0]}).cast_column("audio", Audio(decode=False))
    (prepared, report), peak = peak_of(lambda: prepare_dataset(DatasetDict({"train": split}), 16000))
    decoded = prepared["train"].with_format("numpy")[0]["input_values"]
    assert np.array_equal(decoded, read_mono(path, 16000)) and report.kept == {"train": 1}
    assert peak < 2.5 * decoded.nbytes  # was 3x: the waveform, `np.array`'s copy and `flatten`'s


def test_a_long_clip_alone_in_its_batch_is_written_to_arrow_without_a_copy(tmp_path, small_blocks):
    """The decoded row goes to the cache file over the waveform's own memory: `datasets`' writer joined the rows of
    a batch into new Arrow buffers (`pa.concat_arrays`) even for a batch of one long clip."""
    path = write_tone(tmp_path / "two_minutes.wav", 16000)
    split = Dataset.from_dict({"audio": [path], "label": [0]}).cast_column("audio", Audio(decode=False))
    default = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(default)  # its own count of what Arrow allocates while preparing
    pa.set_memory_pool(pool)
    try:
        prepared, _ = prepare_dataset(DatasetDict({"train": split}), 16000)
    finally:
        pa.set_memory_pool(default)
    assert prepared["train"][0]["length"] == SECONDS * 16000
    assert pool.max_memory() < 0.25 * SECONDS * 16000 * 4  # was the whole waveform again (7.7 MB)
