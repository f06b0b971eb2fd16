"""Audio-decoding leftovers of the first audio-inputs audit.

- A WAV (or FLAC) whose header claims 1 Hz was resampled to the model's rate: 16,000 samples became 256
  million (1 GB). A rate below 1000 Hz is refused naming the file and the rate, in `decode_audio`, its ffmpeg
  path, `iter_audio_chunks` and the server, which measured such an upload as hours of audio (413).
- A float64 WAV holding 1e200 (or stereo at 3e38, which overflows in the mono mix) was refused as
  "NaN or infinite": it is named for its level.
- The server bounds what ffmpeg decodes whole: a WAV whose writer left its data size 0 and an Ogg whose first
  chained stream is empty (libsndfile finds nothing in either) or short were decoded whole, however long.
- `iter_audio_chunks` refused a FLAC piped out of an encoder (no declared length) as corrupt.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks
from hfspeech.serve.errors import ApiError
from hfspeech.serve.upload_audio import decode_upload
from tests.conftest import save_random_baseline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
RNG = np.random.default_rng(7)


def noise(frames: int, channels: int = 1) -> np.ndarray:
    return (RNG.standard_normal((frames, channels)) * 0.1).astype(np.float32).squeeze()


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def streaming_wav(samples: np.ndarray, rate: int) -> bytes:
    """A WAV whose writer could not seek back: data size 0 (libsndfile reads nothing, ffmpeg reads it all)."""
    data = bytearray(wav_bytes(samples, rate))
    at = data.find(b"data")
    data[at + 4: at + 8] = struct.pack("<I", 0)
    return bytes(data)


def piped_flac(samples: np.ndarray, rate: int) -> bytes:
    """A FLAC as an encoder writing to a pipe leaves it: STREAMINFO's total samples 0 (unknown)."""
    data = bytearray(wav_bytes(samples, rate, fmt="FLAC"))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def chained_ogg(first: np.ndarray, second: np.ndarray, rate: int) -> bytes:
    ogg = [wav_bytes(part, rate, subtype="VORBIS", fmt="OGG") for part in (first, second)]
    return ogg[0] + ogg[1]


@pytest.mark.parametrize("rate", [1, 5, 999])
def test_a_wav_whose_header_claims_a_rate_below_1000_hz_is_refused_naming_file_and_rate(tmp_path, rate):
    path = tmp_path / f"at_{rate}_hz.wav"
    sf.write(path, noise(400), rate, subtype="PCM_16")
    for decode in (lambda: decode_audio(str(path), 16000), lambda: list(iter_audio_chunks(path, 16000))):
        with pytest.raises(AudioFileError) as error:
            decode()
        assert str(error.value).startswith(f"{path}: sampling rate of {rate} Hz")
        assert "below 1000 Hz" in str(error.value) and "\n" not in str(error.value)


def test_a_streaming_wav_at_1_hz_decoded_by_ffmpeg_is_refused_before_it_is_resampled():
    with pytest.raises(AudioFileError, match="sampling rate of 1 Hz"):
        decode_audio({"path": None, "bytes": streaming_wav(noise(400), 1)}, 16000)


@pytest.mark.parametrize("rate", [1000, 2000, 7999, 11025])
def test_odd_but_real_rates_still_decode_at_the_models_rate(tmp_path, rate):
    path = tmp_path / f"at_{rate}.wav"
    sf.write(path, noise(rate), rate, subtype="PCM_16")  # 1 s
    assert decode_audio(str(path), 16000).size == 16000
    assert sum(chunk.size for chunk in iter_audio_chunks(path, 16000)) == 16000


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_the_server_refuses_an_upload_at_1_hz_within_the_limit_for_its_rate_as_decode_audio_does(fmt):
    with pytest.raises(AudioFileError, match="sampling rate of 1 Hz"):  # 5 s "at 1 Hz": 80,000 samples at 16 kHz
        decode_upload(wav_bytes(noise(5), 1, fmt=fmt), 16000, max_seconds=10.0)
    with pytest.raises(ApiError) as error:  # measured at its own rate first: 16,000 s (test_security_audit)
        decode_upload(wav_bytes(noise(16000), 1, fmt=fmt), 16000, max_seconds=10.0)
    assert error.value.status == 413


def test_a_float64_wav_holding_1e200_is_named_for_its_level_not_as_nan(tmp_path):
    samples = np.full(800, 0.1)
    samples[100] = 1e200
    path = tmp_path / "double.wav"
    sf.write(path, samples, 8000, subtype="DOUBLE")
    for decode in (lambda: decode_audio(str(path), 16000), lambda: list(iter_audio_chunks(path, 16000)),
                   lambda: decode_upload(path.read_bytes(), 16000, 10.0)):
        with pytest.raises(AudioFileError, match=r"samples reach 1e\+200, over 16777216 times full scale"):
            decode()


def test_stereo_at_3e38_overflowing_in_the_mono_mix_is_named_for_its_level(tmp_path):
    path = tmp_path / "loud_stereo.wav"
    sf.write(path, np.full((800, 2), 3e38, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"samples reach 3e\+38"):
        decode_audio(str(path), 16000)


def test_a_file_that_truly_holds_nan_is_still_named_for_nan(tmp_path):
    samples = np.full(800, 0.1)
    samples[5] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, samples, 8000, subtype="DOUBLE")
    with pytest.raises(AudioFileError, match="NaN or infinite"):
        decode_audio(str(path), 16000)


@pytest.mark.parametrize("upload", [
    streaming_wav(noise(16000 * 12), 16000),  # libsndfile finds 0 frames, ffmpeg 12 s
    chained_ogg(np.zeros(0, np.float32), noise(16000 * 12), 16000),  # first stream empty
    chained_ogg(noise(16000), noise(16000 * 30), 16000),  # libsndfile: no length (2**63 - 1 frames)
], ids=["wav_data_size_0", "ogg_empty_then_12s", "ogg_1s_then_30s"])
def test_uploads_ffmpeg_decodes_whole_are_measured_before_it_does(upload):
    with pytest.raises(ApiError) as error:
        decode_upload(upload, 16000, max_seconds=5.0)
    assert error.value.status == 413
    assert decode_upload(upload, 16000, max_seconds=40.0).size >= 16000 * 12  # within the limit: decoded


def test_a_piped_flac_is_read_in_chunks_as_decode_audio_reads_it(tmp_path):
    path = tmp_path / "piped.flac"
    path.write_bytes(piped_flac(noise(16000 * 3, channels=2), 16000))
    whole = decode_audio(str(path), 16000)
    assert whole.size == 48000
    chunks = np.concatenate(list(iter_audio_chunks(path, 16000, chunk_seconds=1)))
    assert np.array_equal(chunks, whole)
    assert np.array_equal(decode_upload(path.read_bytes(), 16000, 5.0), whole)


def test_predict_names_a_file_at_1_hz_in_one_line_and_scores_the_rest(tmp_path, capsys):
    model = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8],
                                 max_length_seconds=0.5)
    files = [str(tmp_path / "good.wav"), str(tmp_path / "one_hz.wav")]
    sf.write(files[0], noise(8000), 16000, subtype="PCM_16")
    sf.write(files[1], noise(16000), 1, subtype="PCM_16")
    assert cli(["predict", str(model), *files]) == 1
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "good.wav: " in out
    assert err.splitlines() == [f"error: {files[1]}: sampling rate of 1 Hz (from its header) is below 1000 Hz, the "
                                "lowest hfspeech decodes (recordings use 2000 Hz and up, telephone speech 8000): a "
                                "damaged header?", "1 of 2 files could not be read or decoded (each named above)"]
