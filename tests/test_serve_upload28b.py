"""An upload's decoded length bounded whatever its timestamps say (session 28).

What only ffmpeg decodes (WebM, Opus, M4A ...) was measured by asking torchcodec for samples in a 50-ms window
past `--max_seconds`: a window found by timestamps. torchcodec's own WebM encoder (16 kHz input) writes timestamps
16 times too far apart, so the window held no frame, and a 332 KB WebM of 600 s passed `decode_upload` with a
limit of 10 s and was decoded whole (+129 MB peak memory, 0.67 s); timestamps 100 times too close
(`setts=ts=TS/100`) put all of it before the window. torchcodec's ranges are cut by timestamps too, so the length
is now counted in decoded samples, frame by frame, and counting stops just past the limit (refused in 0.01 s).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
import torchcodec._core
from test_audio27 import piped_flac
from test_serve_upload28 import UPLOADS, soundfile_bytes, speech_like

from hfspeech.data.audio import decode_audio
from hfspeech.serve.audio_length import too_long
from hfspeech.serve.errors import ApiError
from hfspeech.serve.upload_audio import decode_upload

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
OPUS_RATE = 48000  # what an Opus stream decodes at, whatever rate it was encoded from


def torchcodec_webm(samples: np.ndarray, rate: int) -> bytes:
    """Opus in WebM by torchcodec's encoder: its timestamps run 16 times too slow (16 kHz input)."""
    from torchcodec.encoders import AudioEncoder

    channels_first = torch.from_numpy(np.ascontiguousarray(samples.reshape(len(samples), -1).T))
    return AudioEncoder(channels_first, sample_rate=rate).to_tensor(format="webm").numpy().tobytes()


def ffmpeg_encoded(samples: np.ndarray, rate: int, *arguments: str) -> bytes:
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg program (apt-get install ffmpeg) to write this upload")
    wav = soundfile_bytes(samples, rate, "WAV")
    return subprocess.run(["ffmpeg", "-loglevel", "error", "-i", "pipe:", *arguments, "pipe:"], input=wav,
                          capture_output=True, check=True).stdout


def crowded_webm(samples: np.ndarray, rate: int) -> bytes:
    """Opus in WebM whose timestamps are 100 times too close: 60 s of audio stamped within 0.6 s."""
    return ffmpeg_encoded(samples, rate, "-c:a", "libopus", "-bsf:a", "setts=ts=TS/100", "-f", "webm")


def ogg_opus(samples: np.ndarray, rate: int) -> bytes:
    return ffmpeg_encoded(samples, rate, "-c:a", "libopus", "-f", "ogg")


def crc(data: bytes, polynomial: int, width: int) -> int:
    """FLAC's CRC-8 (0x07) of a frame header and CRC-16 (0x8005) of a frame: MSB first, from 0."""
    top, mask, value = 1 << (width - 1), (1 << width) - 1, 0
    for byte in data:
        value ^= byte << (width - 8)
        for _ in range(8):
            value = ((value << 1) ^ polynomial) & mask if value & top else (value << 1) & mask
    return value


def frame_headers(flac: bytes) -> list[tuple[int, int]]:
    """(start, length before its CRC-8) of each frame of a fixed-blocksize FLAC, found by sync code and CRC-8."""
    position, last = 4, False
    while not last:  # metadata blocks: a last-block flag and a 24-bit length each
        size = int.from_bytes(flac[position + 1:position + 4], "big")
        last, position = bool(flac[position] & 0x80), position + 4 + size
    headers = []
    while position < len(flac) - 6:
        blocksize_code = flac[position + 2] >> 4  # 6 and 7: the blocksize follows the number, in 1 or 2 bytes
        length = 4 + utf8_length(flac[position + 4]) + (blocksize_code in (6, 7)) + (blocksize_code == 7)
        header = flac[position:position + length]
        if header[:2] == b"\xff\xf8" and crc(header, 7, 8) == flac[position + length]:
            headers.append((position, length))
            position += length
        position += 1
    return headers


def utf8_length(first: int) -> int:
    return 1 if first < 0x80 else 2 if first < 0xE0 else 3


def crowded_flac(samples: np.ndarray, rate: int) -> bytes:
    """A piped FLAC whose frames say they are frame 0 (or 128, the first number of two bytes): ffmpeg's timestamps
    of a FLAC are its frame numbers, so its first 128 frames (33 s at 16 kHz) all play at 0 s."""
    flac = bytearray(piped_flac(samples, rate))
    headers = frame_headers(bytes(flac))
    for (start, length), end in zip(headers, [start for start, _ in headers[1:]] + [len(flac)]):
        width = utf8_length(flac[start + 4])
        flac[start + 4:start + 4 + width] = {1: b"\0", 2: b"\xc2\x80"}.get(width, flac[start + 4:start + 4 + width])
        flac[start + length] = crc(flac[start:start + length], 7, 8)
        flac[end - 2:end] = crc(flac[start:end - 2], 0x8005, 16).to_bytes(2, "big")
    return bytes(flac)


@pytest.fixture
def decoded_samples(monkeypatch):
    """Samples torchcodec decodes, counted at the two core calls its decoders go through (a spy: each still runs)."""
    counted = []
    for name in ("get_next_frame", "get_frames_by_pts_in_range_audio"):
        original = getattr(torchcodec._core, name)

        def counting(*args, _original=original, **kwargs):
            answer = _original(*args, **kwargs)
            counted.append(answer[0].shape[-1])
            return answer

        monkeypatch.setattr(torchcodec._core, name, counting)
    return counted


@pytest.mark.parametrize("lying, stream_rate", [
    (torchcodec_webm, OPUS_RATE), (crowded_webm, OPUS_RATE), (crowded_flac, 16000)])
def test_an_upload_whose_timestamps_lie_is_refused_having_decoded_no_more_than_the_limit(lying, stream_rate,
                                                                                        decoded_samples):
    body = lying(np.zeros(16000 * 60, np.float32), 16000)
    with pytest.raises(ApiError) as refused:
        decode_upload(body, 16000, max_seconds=10.0)
    assert str(refused.value) == str(too_long(10.0))
    assert 0 < sum(decoded_samples) <= 11 * stream_rate  # 60 s of it would be 60 times the rate


def test_a_short_torchcodec_webm_is_decoded_whole_within_the_limit_and_refused_past_it():
    """3 s whose timestamps say 48 s: a timestamp-cut decode gave its first 0.69 s; counted, it is 3 s."""
    body = torchcodec_webm(speech_like(16000, 3.0, 1), 16000)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    assert np.array_equal(decode_upload(body, 16000, max_seconds=10.0), expected)
    with pytest.raises(ApiError) as refused:
        decode_upload(body, 16000, max_seconds=2.0)
    assert (refused.value.status, refused.value.kind) == (413, "audio_too_long")


MORE_UPLOADS = {"torchcodec WebM": torchcodec_webm, "Ogg Opus": ogg_opus}


@pytest.mark.parametrize("kind", MORE_UPLOADS)
@pytest.mark.parametrize("rate, channels", [(16000, 1), (48000, 2), (8000, 2)])
def test_more_ffmpeg_uploads_decode_to_decode_audios_waveform_bit_for_bit(kind, rate, channels):
    body = MORE_UPLOADS[kind](speech_like(rate, 2.0, channels), rate)
    expected = decode_audio({"path": None, "bytes": body}, 16000)
    assert np.array_equal(decode_upload(body, 16000, max_seconds=5.0), expected)


@pytest.mark.parametrize("kind", [*UPLOADS, *MORE_UPLOADS])
def test_an_honest_upload_half_a_second_within_the_limit_passes_and_half_a_second_past_it_is_refused(kind):
    make = {**UPLOADS, **MORE_UPLOADS}[kind]
    assert decode_upload(make(speech_like(16000, 2.5, 1), 16000), 16000, max_seconds=3.0).size
    with pytest.raises(ApiError) as refused:
        decode_upload(make(speech_like(16000, 3.5, 1), 16000), 16000, max_seconds=3.0)
    assert str(refused.value) == str(too_long(3.0))
