"""An upload's header read once (session 28): `serve.upload_audio.decode_upload` opens an upload libsndfile reads
once, whatever its format, and gives `decode_audio`'s waveform, bit for bit (what only ffmpeg reads too).

- A WAV was opened three times (to look for a compressed header, to measure it, to decode it) and a piped FLAC
  twice (to read it, then for its STREAMINFO rate): one open now gives the header and, within the limit, the read.
- An Ogg cut inside its last page (libsndfile: 0 frames) whose header says 500 Hz was refused for its rate, where
  `decode_audio` lets ffmpeg name it (the rate is checked after the read, in `decode_audio`'s order).
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from test_audio27 import mp3_without_frame_count, piped_flac

from hfspeech.data.audio import AudioFileError, decode_audio
from hfspeech.serve.errors import ApiError
from hfspeech.serve.upload_audio import decode_upload

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def speech_like(rate: int, seconds: float, channels: int) -> np.ndarray:
    """Low-passed noise under a syllable-rate envelope: content across the band, as speech has, seeded."""
    rng = np.random.default_rng(rate + channels)
    samples = int(rate * seconds)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 8 * np.pi * seconds, samples))
    noise = np.stack([np.convolve(rng.standard_normal(samples), np.ones(4) / 4, "same") for _ in range(channels)], 1)
    return (0.3 * envelope[:, None] * noise).astype(np.float32).squeeze()


def soundfile_bytes(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


def m4a_bytes(samples: np.ndarray, rate: int) -> bytes:
    """AAC in MP4, which only ffmpeg decodes (torchcodec's encoder, as test_audio27 makes one)."""
    import torch
    from torchcodec.encoders import AudioEncoder

    channels_first = torch.from_numpy(np.ascontiguousarray(samples.reshape(len(samples), -1).T))
    return AudioEncoder(channels_first, sample_rate=rate).to_tensor(format="mp4").numpy().tobytes()


def piped_webm_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Opus in WebM written into a pipe by ffmpeg, as a browser's recorder streams one: no duration in its header
    (torchcodec's own WebM encoder writes timestamps that its decoder cannot seek by, nor this server measure)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg program (apt-get install ffmpeg) to write a piped WebM")
    encoded = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", "pipe:", "-c:a", "libopus", "-f", "webm", "pipe:"],
                             input=soundfile_bytes(samples, rate, "WAV"), capture_output=True, check=True)
    return encoded.stdout


UPLOADS = {
    "WAV": lambda x, rate: soundfile_bytes(x, rate, "WAV"),
    "FLAC": lambda x, rate: soundfile_bytes(x, rate, "FLAC"),
    "piped FLAC": piped_flac,
    "MP3 with a Xing frame count": lambda x, rate: soundfile_bytes(x, rate, "MP3"),
    "MP3 without a frame count": mp3_without_frame_count,
    "Ogg": lambda x, rate: soundfile_bytes(x, rate, "OGG"),
    "M4A": m4a_bytes,
    "WebM": piped_webm_bytes,
}


@pytest.mark.parametrize("kind", UPLOADS)
@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2), (8000, 2)])
def test_every_kind_of_upload_decodes_to_decode_audios_waveform_bit_for_bit(kind, rate, channels):
    body = UPLOADS[kind](speech_like(rate, 2.0, channels), rate)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    waveform = decode_upload(body, 16000, max_seconds=5.0)
    assert waveform.dtype == np.float32 and np.array_equal(waveform, expected)
    with pytest.raises(ApiError) as refused:  # and past the limit, still refused
        decode_upload(body, 16000, max_seconds=1.0)
    assert (refused.value.status, refused.value.kind) == (413, "audio_too_long")


@pytest.fixture
def libsndfile_opens(monkeypatch):
    """Every `soundfile.SoundFile` opened (`soundfile.read` opens one too), counted."""
    opened, init = [], sf.SoundFile.__init__

    def counting_init(self, *args, **kwargs):
        opened.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "__init__", counting_init)
    return opened


@pytest.mark.parametrize("kind", ["WAV", "FLAC", "piped FLAC", "MP3 with a Xing frame count", "Ogg"])
def test_an_upload_libsndfile_reads_is_opened_by_it_once(libsndfile_opens, kind):
    body = UPLOADS[kind](speech_like(16000, 2.0, 2), 16000)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    libsndfile_opens.clear()
    assert np.array_equal(decode_upload(body, 16000, max_seconds=5.0), expected)
    assert len(libsndfile_opens) == 1, f"a {kind} upload opened {len(libsndfile_opens)} times"


def test_a_damaged_ogg_whose_header_says_500_hz_is_named_as_decode_audio_names_it():
    """Cut inside its last page, the Ogg holds no frame libsndfile finds: `decode_audio` leaves it to ffmpeg,
    whose words name it; the server said 'sampling rate of 500 Hz' instead, checking the rate before the read."""
    whole = soundfile_bytes(speech_like(500, 0.5, 2), 500, "OGG")
    body = whole[:whole.rindex(b"OggS") + 100]
    assert sf.info(io.BytesIO(body)).frames == 0  # what libsndfile finds: nothing to read
    with pytest.raises(AudioFileError) as expected:
        decode_audio({"path": None, "bytes": body}, 16000)
    with pytest.raises(AudioFileError) as answer:
        decode_upload(body, 16000, max_seconds=5.0)
    assert "500 Hz" not in str(expected.value) and str(answer.value) == str(expected.value)
