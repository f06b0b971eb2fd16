"""A decode's memory is the mono waveform's, not the upload's channels at its rate (`data.mono_read`), and a server
decodes no more uploads at once than its CPUs (`serve.runner.decode_slots`).

A 245 KB FLAC of 599 s of 8-channel 96 kHz audio, within `--max_seconds 600` and the body limit, took 5.5 GB read
whole (a server under a 1 GiB limit was OOM-killed); a 10-minute 48 kHz stereo MP3 768 MB, 438 MB of it the
cancelled-mix check's float64 square. Here the same shapes, seconds long: the peak must follow the output (16 kHz
mono), and the waveform must be the whole read's, sample for sample, however the blocks fall.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from hfspeech.data import mono_read
from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks
from hfspeech.data.samples import cancelled_mix_problem, downmix_to_mono
from hfspeech.serve.errors import ApiError
from hfspeech.serve.payload import Parameters
from hfspeech.serve.runner import ModelRunner
from hfspeech.serve.upload_audio import decode_upload

RATE = 16000


def encoded(samples: np.ndarray, rate: int, format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=format, subtype=subtype)
    return buffer.getvalue()


def channels_of_tones(seconds: float, rate: int, channels: int) -> np.ndarray:
    """`[n, channels]` float32: a tone per channel (each its own frequency) under a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(channels)
    tones = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(t.size)
             for c in range(channels)]
    return np.stack(tones, axis=1).astype(np.float32)


def traced_peak(decode) -> tuple[np.ndarray, int]:
    """(what `decode()` returns, the most bytes numpy and Python held at once while it ran)."""
    tracemalloc.start()
    try:
        waveform = decode()
        return waveform, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def eight_channels_96k() -> bytes:
    """6 s of 8 channels at 96 kHz as FLAC: 18 MB of float32 read whole (55 MB with the float64 square), 0.4 MB
    of mono at 16 kHz."""
    return encoded(channels_of_tones(6, 96000, 8), 96000, "FLAC", "PCM_16")


@pytest.mark.parametrize("path", ["upload", "predict"])
def test_a_many_channel_high_rate_decode_holds_the_mono_output_not_the_channels(eight_channels_96k, tmp_path, path):
    file = tmp_path / "eight.flac"
    file.write_bytes(eight_channels_96k)
    decode = (lambda: decode_upload(eight_channels_96k, RATE, 600)) if path == "upload" \
        else (lambda: decode_audio(str(file), RATE))
    waveform, peak = traced_peak(decode)
    assert waveform.shape == (6 * RATE,)
    # the output a few times over (blocks' list, their concatenation, the level check) and one block being read
    bound = 3 * waveform.nbytes + 2 * 4 * mono_read.BLOCK_SAMPLES
    assert peak < bound, f"{path}: peak {peak >> 20} MB for {waveform.nbytes >> 10} KB of output (bound {bound >> 20})"


def test_the_cancelled_mix_check_makes_no_float64_copy_of_the_samples():
    stereo = np.random.default_rng(0).standard_normal((1_000_000, 2)).astype(np.float32)
    mono = downmix_to_mono(stereo)
    problem, peak = traced_peak(lambda: cancelled_mix_problem(stereo, mono))
    assert problem is None and peak < stereo.nbytes // 8, f"peak {peak >> 20} MB for {stereo.nbytes >> 20} MB"


def whole_read(audio: bytes, sampling_rate: int) -> np.ndarray:
    """The read before blocks: every channel at once, mixed, resampled by `soxr.resample`."""
    samples, rate = sf.read(io.BytesIO(audio), dtype="float32", always_2d=True)
    mono = downmix_to_mono(samples)
    return mono if rate == sampling_rate else soxr.resample(mono, rate, sampling_rate)


FORMATS = [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24"), ("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS")]


@pytest.mark.parametrize("block_samples", [mono_read.BLOCK_SAMPLES, 3001])  # one block; hundreds of odd sizes
@pytest.mark.parametrize("format,subtype", FORMATS)
def test_blocks_give_the_whole_reads_samples(monkeypatch, tmp_path, format, subtype, block_samples):
    monkeypatch.setattr(mono_read, "BLOCK_SAMPLES", block_samples)
    for channels, rate in ((2, 48000), (1, 16000)) + (((6, 22050),) if format != "MP3" else ()):  # MP3: 1 or 2
        audio = encoded(channels_of_tones(1.3, rate, channels), rate, format, subtype)
        (tmp_path / "clip").write_bytes(audio)
        for sampling_rate in (RATE, rate):
            expected = whole_read(audio, sampling_rate)
            uploaded = decode_upload(audio, sampling_rate, 600)
            read = decode_audio(str(tmp_path / "clip"), sampling_rate)
            assert np.array_equal(uploaded, expected), (channels, rate, sampling_rate)
            assert np.array_equal(read, uploaded)  # the server's read is `decode_audio`'s, bit for bit


def test_a_long_mp3_read_in_chunks_loses_nothing_at_their_edges(tmp_path):
    """`SoundFile.read` seeks back to where it stopped after each call, and libsndfile's MP3 seek restarts mpg123
    without its bit reservoir: thousands of frames after each block of a 44.1 kHz MP3 came out as zeros (0.14 of
    full scale off). `iter_audio_chunks` (predict's long files) read 10-s blocks so; the server's blocks too."""
    t = np.arange(8 * 44100) / 44100
    tones = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)  # the reservoir used
    path = tmp_path / "long.mp3"
    path.write_bytes(encoded(tones.astype(np.float32), 44100, "MP3", "MPEG_LAYER_III"))
    whole = decode_audio(str(path), RATE)
    chunks = np.concatenate(list(iter_audio_chunks(str(path), RATE, chunk_seconds=1)))
    assert chunks.shape == whole.shape and float(np.abs(chunks - whole).max()) < 1e-6


@pytest.mark.parametrize("block_samples", [mono_read.BLOCK_SAMPLES, 3001])
def test_channels_that_cancel_are_still_refused_when_read_in_blocks(monkeypatch, block_samples):
    monkeypatch.setattr(mono_read, "BLOCK_SAMPLES", block_samples)
    tone = channels_of_tones(1.0, 48000, 1)[:, 0]
    inverted = np.stack([tone, -tone], axis=1)
    with pytest.raises(AudioFileError, match="its 2 channels cancel out when mixed to mono .* the mix is silent"):
        decode_upload(encoded(inverted, 48000, "WAV", "FLOAT"), RATE, 600)
    half = inverted.copy()
    half[len(half) // 2:, 1] = 0  # cancels for half its length only: the whole clip's energies decide, not a block's
    assert decode_upload(encoded(half, 48000, "WAV", "FLOAT"), RATE, 600).size == RATE


def test_a_rate_no_audio_has_is_refused_not_resampled():
    audio = encoded(channels_of_tones(4, 500, 2), 500, "WAV", "PCM_16")
    with pytest.raises(AudioFileError, match="500 Hz"):
        decode_upload(audio, RATE, 600)


def test_a_server_decodes_no_more_uploads_at_once_than_its_decode_slots(monkeypatch):
    """8 uploads at once on a process whose CPU share is 1 thread: 2 decode at a time (the floor), not the default
    pool's min(32, cores + 4)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HFSPEECH_NUM_THREADS", "1")
    runner = ModelRunner("unused")
    runner.classifier = type("Loaded", (), {"config": None})()  # loaded: `classify` goes on to decode
    monkeypatch.setattr("hfspeech.serve.runner.refuse_votes_off_scale", lambda config, parameters: None)
    lock, running, most = threading.Lock(), [0], [0]

    def windows(audio):  # the decode, standing in: counts how many run at once, then refuses the upload
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        raise ApiError(413, "audio_too_long", "upload: too long")

    runner.windows = windows

    async def main():
        return await asyncio.gather(*(runner.classify(b"x", Parameters()) for _ in range(8)), return_exceptions=True)

    answers = asyncio.run(main())
    assert all(isinstance(answer, ApiError) for answer in answers)
    assert most[0] == 2, f"{most[0]} uploads decoded at once"


def test_an_apps_decoding_threads_end_with_it(tmp_path):
    """`create_app` in one process again and again (a notebook, the test suite) left one more live decoding thread
    each time until the garbage collector ran (reviewer R5): the pool is shut down as the app's lifespan ends."""
    import threading

    from starlette.testclient import TestClient

    from hfspeech.serve.app import ServeSettings, create_app
    from tests.conftest import save_random_baseline

    folder = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(8000, np.float32), 16000, format="WAV")
    def decoding_threads() -> set:
        return {thread for thread in threading.enumerate() if thread.name.startswith("hfspeech-decode")}

    before = decoding_threads()  # other tests' runners, made without a lifespan, until collected
    for _ in range(2):
        with TestClient(create_app(ServeSettings(model=str(folder), allowed_hosts=None))) as client:
            assert client.post("/", content=buffer.getvalue()).status_code == 200
    ours = decoding_threads() - before
    for thread in ours:  # told to end (`shutdown(wait=False)`): each ends once it has read that
        thread.join(timeout=10)
    assert not [thread for thread in ours if thread.is_alive()], ours


def test_a_16_khz_mp3_read_in_chunks_is_the_whole_read_bit_for_bit(tmp_path):
    """libsndfile decodes an MPEG-2 MP3 read straight after opening 1 ulp off the same MP3 read after a seek, as
    `soundfile.read` (and `read_mono`) read it: the chunks now start with the same seek (reviewer R5)."""
    t = np.arange(6 * 16000) / 16000
    path = tmp_path / "speech-rate.mp3"
    path.write_bytes(encoded((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[:, None], 16000, "MP3",
                             "MPEG_LAYER_III"))
    whole = decode_audio(str(path), 16000)
    chunks = np.concatenate(list(iter_audio_chunks(str(path), 16000, chunk_seconds=2)))
    assert np.array_equal(chunks, whole)
