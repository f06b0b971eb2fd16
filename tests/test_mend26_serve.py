"""Serving compressed uploads decoded once, and the live sources' one sniffer (session 26's serve mends).

- `POST /` counted a FLAC, Ogg or MP3 upload's length by decoding it in blocks (`audio_length`), then
  `decode_audio` decoded it again, whole (and an MP3 was also sought through by ffmpeg): a 10-s MP3 served at
  0.82x the requests per second of before the count. Now one read gives the waveform, the same floats as
  `decode_audio`'s, and an upload over `--max_seconds` is still refused before it is decoded whole.
- stdin, `--follow` and `/stream` wait for 8 bytes and refuse encoded audio in one place (`live_format`).
- A `LiveStream` names its two bounds: the whole stream's (None on a WebSocket) and one message's.
"""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from conftest import save_random_baseline, synth_clip

from hfspeech.data.audio import AudioFileError, decode_audio
from hfspeech.serve.errors import ApiError, audio_error

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
LIMIT = 3.0


def encoded(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, **({"subtype": "VORBIS"} if fmt == "OGG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """The server's model runner (audio limited to 3 s) on a random 16 kHz CNN, loaded in this thread."""
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.serve.runner import ModelRunner

    folder = save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                  conv_channels=[4, 8])
    running = ModelRunner(str(folder), max_seconds=LIMIT)
    running.classifier = AudioClassifier.from_pretrained(str(folder))
    return running


@pytest.fixture
def frames_read(monkeypatch):
    """The frames libsndfile decodes (every `SoundFile.read`, as `soundfile.read` also reads), in a list."""
    read, counted = sf.SoundFile.read, []

    def counting(self, *args, **kwargs):
        out = read(self, *args, **kwargs)
        counted.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", counting)
    return counted


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
@pytest.mark.parametrize("rate, channels", [(16000, 1), (8000, 2), (44100, 2)])
def test_a_compressed_upload_is_decoded_once_into_decode_audios_waveform(runner, frames_read, fmt, rate, channels):
    rng = np.random.default_rng(0)
    clip = np.stack([synth_clip("low", rng, rate, 2.5) for _ in range(channels)], axis=1)
    body = encoded(clip, rate, fmt)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    declared = sf.info(io.BytesIO(body)).frames
    frames_read.clear()
    waveform = runner.decode(body)
    assert sum(frames_read) == declared, f"{sum(frames_read)} frames decoded for an upload of {declared}"
    assert waveform.dtype == np.float32 and np.array_equal(waveform, expected)  # same floats, bit for bit


def zero_declared_length(flac: bytes) -> bytes:
    """The FLAC an encoder writes into a pipe: STREAMINFO's total samples 0 (unknown)."""
    data = bytearray(flac)
    data[8 + 13] &= 0xF0
    data[8 + 14: 8 + 18] = bytes(4)
    return bytes(data)


BOMBS = {  # each a few KB to a few hundred KB that decode to minutes or an hour (16 kHz float32: 230 MB an hour)
    "FLAC": lambda: encoded(np.zeros(8000 * 3600, np.int16), 8000, "FLAC"),
    "FLAC of unknown length": lambda: zero_declared_length(encoded(np.zeros(8000 * 3600, np.int16), 8000, "FLAC")),
    "MP3": lambda: encoded(np.zeros(8000 * 600, np.float32), 8000, "MP3"),
    "Ogg": lambda: encoded(np.zeros(8000 * 60, np.float32), 8000, "OGG"),  # libvorbis crashes writing 100 s of zeros
}


@pytest.mark.parametrize("name", BOMBS)
def test_an_upload_over_the_limit_is_still_refused_before_it_is_decoded_whole(runner, name):
    body = BOMBS[name]()
    tracemalloc.start()
    try:
        with pytest.raises(ApiError) as refused:
            runner.decode(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (refused.value.status, refused.value.kind) == (413, "audio_too_long")
    assert refused.value.message == "upload: more than 3 s of audio (the limit, --max_seconds)"
    assert peak < 20e6, f"{peak / 1e6:.0f} MB held to refuse {len(body)} bytes"


def test_an_upload_decode_audio_refuses_is_refused_with_its_words(runner):
    """A truncated MP3 (its header declares more than it holds) and a FLAC cut mid-stream: the same 400 as
    `decode_audio`'s error gives, whichever way the upload was read."""
    clip = synth_clip("low", np.random.default_rng(1), 16000, 2.0)
    for body in (encoded(clip, 16000, "MP3")[:4000], encoded(clip, 16000, "FLAC")[:20000]):
        try:
            decode_audio({"path": None, "bytes": body}, 16000)
            expected = None
        except AudioFileError as error:
            expected = audio_error(error).message
        try:
            answer = runner.decode(body).size
        except ApiError as error:
            answer = error.message
        assert answer == (expected or decode_audio({"path": None, "bytes": body}, 16000).size)


def test_a_compressed_upload_whose_channels_cancel_is_refused_as_decode_audio_refuses_it(runner):
    """Stereo whose right channel is the left inverted mixes to nothing: `decode_audio` refuses it (session 26's
    audio-inputs audit), and the upload read once must too, not classify the residue (a lossless FLAC: Vorbis
    does not keep the inversion exact enough to cancel by 40 dB)."""
    clip = synth_clip("low", np.random.default_rng(2), 16000, 2.0)
    body = encoded(np.stack([clip, -clip], axis=1), 16000, "FLAC")
    with pytest.raises(AudioFileError) as expected:
        decode_audio({"path": None, "bytes": body}, 16000)
    with pytest.raises(ApiError) as answer:
        runner.decode(body)
    assert "cancel out" in answer.value.message and answer.value.message == audio_error(expected.value).message


def test_a_live_stream_names_what_each_of_its_limits_bounds(runner):
    """POST /stream is held to the limit in total and per message; a WebSocket only per message (it used to
    be told so by `max_seconds` set to None after the stream was built, its message bound a copy kept aside)."""
    from hfspeech.inference.sources import PcmDecoder, PcmFormat
    from hfspeech.inference.streaming import StreamingClassifier
    from hfspeech.serve.stream import LiveStream

    pcm = PcmFormat("s16le", 16000, 1)
    second = (synth_clip("low", np.random.default_rng(2), 16000, 1.0) * 32767).astype("<i2").tobytes()

    def live(whole: bool) -> LiveStream:
        return LiveStream(PcmDecoder(pcm), StreamingClassifier(runner.classifier, min_windows=1), False, LIMIT,
                          limit_whole_stream=whole)

    post, websocket = live(True), live(False)
    assert (post.max_stream_seconds, post.max_message_seconds) == (LIMIT, LIMIT)
    assert (websocket.max_stream_seconds, websocket.max_message_seconds) == (None, LIMIT)
    for _ in range(3):
        post.feed(second)
    with pytest.raises(ApiError, match="over the limit of 3 s of audio"):
        post.feed(second)
    for _ in range(5):
        websocket.feed(second)
    with pytest.raises(ApiError, match="one message holds 4 s"):
        websocket.feed(second * 4)
