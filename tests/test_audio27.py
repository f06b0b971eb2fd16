"""Audio decoding leftovers (session 27): uploads whose length no header declares decoded once, the 1000 Hz
floor for arrays, and more than two channels averaged in every file libsndfile reads.

- A piped FLAC (STREAMINFO's total samples 0) or an MP3 without a Xing/VBRI frame count was counted by ffmpeg
  (`audio_length`), then decoded again by `decode_audio`: now one torchcodec decode, no further than just past
  `--max_seconds`, the same floats as `decode_audio`'s.
- `classify_waveform(x, sampling_rate=16)` resampled 1000-fold (a 1-s array became 1000 s) where a file at
  16 Hz is refused: arrays are held to the same floor, in the same words.
- A 3-channel WAV lost its 3rd channel and a 6-channel one its 4th (ffmpeg's layouts take them for LFE) while
  9 or more channels were averaged: every file libsndfile reads now averages its channels.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from conftest import save_random_baseline, synth_clip

from hfspeech.data.audio import decode_audio, iter_audio_chunks
from hfspeech.errors import UsageError
from hfspeech.serve.errors import ApiError
from hfspeech.serve.upload_audio import decode_upload

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
LIMIT = 3.0


def encoded(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


def piped_flac(samples: np.ndarray, rate: int) -> bytes:
    """The FLAC an encoder writes into a pipe: STREAMINFO's total samples 0 (unknown)."""
    data = bytearray(encoded(samples, rate, "FLAC"))
    data[8 + 13] &= 0xF0
    data[8 + 14: 8 + 18] = bytes(4)
    return bytes(data)


def mp3_without_frame_count(samples: np.ndarray, rate: int) -> bytes:
    """An MP3 whose first frame carries no Xing/Info tag (some CBR encoders, streams): no declared length."""
    data = encoded(samples, rate, "MP3")
    assert data.count(b"Xing") + data.count(b"Info") == 1
    return data.replace(b"Xing", b"\0\0\0\0").replace(b"Info", b"\0\0\0\0")


def stereo(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([synth_clip("low", rng, rate, seconds), synth_clip("high", rng, rate, seconds)], axis=1)


UNDECLARED = {"piped FLAC": piped_flac, "MP3 without a frame count": mp3_without_frame_count}


@pytest.fixture
def decoders_opened(monkeypatch):
    """Every torchcodec `AudioDecoder` opened (`datasets.Audio`'s too) and libsndfile frame read, counted."""
    from torchcodec.decoders import AudioDecoder

    opened, frames, init, read = [], [], AudioDecoder.__init__, sf.SoundFile.read

    def counting_init(self, *args, **kwargs):
        opened.append(1)
        init(self, *args, **kwargs)

    def counting_read(self, *args, **kwargs):
        out = read(self, *args, **kwargs)
        frames.append(len(out))
        return out

    monkeypatch.setattr(AudioDecoder, "__init__", counting_init)
    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    return opened, frames


@pytest.mark.parametrize("kind", UNDECLARED)
@pytest.mark.parametrize("rate", [16000, 44100])
def test_an_upload_of_undeclared_length_is_decoded_in_one_ffmpeg_pass_into_decode_audios_waveform(decoders_opened,
                                                                                                 kind, rate):
    body = UNDECLARED[kind](stereo(rate, 2.0), rate)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    opened, frames = decoders_opened
    opened.clear(), frames.clear()
    waveform = decode_upload(body, 16000, LIMIT)
    counted = 1 if kind == "piped FLAC" else 0  # its samples are counted first: frame numbers (timestamps) can lie
    assert (len(opened), sum(frames)) == (1 + counted, 0), \
        f"{len(opened)} ffmpeg decoders, {sum(frames)} libsndfile frames"
    assert waveform.dtype == np.float32 and np.array_equal(waveform, expected)  # bit for bit


@pytest.mark.parametrize("kind", UNDECLARED)
def test_an_upload_of_undeclared_length_over_the_limit_is_refused_without_decoding_it_whole(monkeypatch, kind):
    """Samples counted at torchcodec's two core decode calls (a piped FLAC is counted frame by frame, an MP3
    without a frame count decoded once with a stop): a spy, each call still runs."""
    import torchcodec._core

    body = UNDECLARED[kind](np.zeros((8000 * 60, 2), np.float32), 8000)  # a minute of silence
    decoded = []
    for name in ("get_next_frame", "get_frames_by_pts_in_range_audio"):
        def counting(*args, _original=getattr(torchcodec._core, name), **kwargs):
            answer = _original(*args, **kwargs)
            decoded.append(answer[0].shape[-1])
            return answer

        monkeypatch.setattr(torchcodec._core, name, counting)
    with pytest.raises(ApiError) as refused:
        decode_upload(body, 16000, LIMIT)
    assert (refused.value.status, refused.value.message) == (413, "upload: more than 3 s of audio (the limit, "
                                                                   "--max_seconds)")
    assert 0 < sum(decoded) < 16000 * (LIMIT + 2), f"{sum(decoded)} samples decoded to refuse 60 s"  # 60 s: 960,000


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from hfspeech.inference.classifier import AudioClassifier

    folder = save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                  conv_channels=[4, 8])
    return AudioClassifier.from_pretrained(str(folder))


FLOOR = r"sampling rate of 16 Hz is below 1000 Hz, the lowest hfspeech decodes \(recordings use 2000 Hz and up"


def test_an_array_below_the_files_1000_hz_floor_is_refused_in_their_words(classifier):
    from hfspeech.inference.streaming import StreamingClassifier

    clip = synth_clip("low", np.random.default_rng(3), 16000, 1.0)
    with pytest.raises(UsageError, match=rf"^sampling_rate: {FLOOR}"):
        classifier.classify_waveform(clip, sampling_rate=16)  # was resampled to 1000 s of audio
    with pytest.raises(UsageError, match=rf"^input_rate: {FLOOR}"):
        StreamingClassifier(classifier, input_rate=16)
    assert sorted(classifier.classify_waveform(clip[:1000], sampling_rate=1000).labels) == ["a", "b"]  # audio


@pytest.mark.parametrize("channels", [3, 6, 8])
def test_a_multichannel_file_is_averaged_with_no_channel_dropped(tmp_path, channels):
    rate = 16000
    t = np.arange(rate) / rate
    samples = np.stack([0.1 * np.sin(2 * np.pi * (200 + 100 * c) * t) for c in range(channels)], axis=1)
    path = tmp_path / f"array_{channels}.wav"
    sf.write(path, samples.astype(np.float32), rate, subtype="FLOAT")
    average = samples.astype(np.float32).mean(axis=1, dtype=np.float32)
    np.testing.assert_allclose(decode_audio(path, rate), average, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(list(iter_audio_chunks(path, rate, 1))), average, atol=1e-6)


def test_a_multichannel_flac_upload_is_read_once_into_decode_audios_waveform(decoders_opened):
    rate = 16000
    body = encoded(np.concatenate([stereo(rate, 1.0)] * 3, axis=1), rate, "FLAC")  # 6 channels
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    opened, frames = decoders_opened
    opened.clear(), frames.clear()
    assert np.array_equal(decode_upload(body, 16000, LIMIT), expected)
    assert (len(opened), sum(frames)) == (0, rate)


def test_a_piped_flac_whose_streaminfo_rate_lies_is_never_cut_short():
    """STREAMINFO says 500 Hz, the frames 16 kHz: ffmpeg counts timestamps at 500 Hz, so a range stopped at the
    limit held a 32nd of it, and the upload decoded once came out 0.77 s of its 2 s without a word."""
    data = bytearray(piped_flac(stereo(16000, 2.0), 16000))
    rate_field = int.from_bytes(data[18:21], "big")  # 20 bits of rate, 3 of channels, 1 of bits per sample
    data[18:21] = ((500 << 4) | (rate_field & 0xF)).to_bytes(3, "big")
    body = bytes(data)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    try:
        waveform = decode_upload(body, 16000, 20.0)
    except ApiError as error:  # measured at 500 Hz it plays 64 s: refused, as before
        assert error.status == 413
    else:
        assert np.array_equal(waveform, expected)


def test_an_m4a_decodes_without_its_encoders_priming_at_the_start():
    """ffmpeg's own `-i x.m4a out.wav` drops the AAC encoder's 1024 priming samples (the MP4 edit list): so does
    `decode_audio` (raw ADTS AAC has no edit list and keeps them, in ffmpeg's CLI too)."""
    import torch
    from torchcodec.encoders import AudioEncoder

    rng = np.random.default_rng(4)
    clip = (np.convolve(rng.standard_normal(16000), np.ones(8) / 8, "same") * 0.3).astype(np.float32)
    body = AudioEncoder(torch.from_numpy(clip)[None], sample_rate=16000).to_tensor(format="mp4").numpy().tobytes()
    waveform = decode_audio({"path": None, "bytes": body}, 16000)
    lag = int(np.argmax(np.correlate(waveform[:6000], clip[:3000], "valid")))
    assert lag == 0 and 16000 <= waveform.size < 16000 + 1024, (lag, waveform.size)
