"""Audio files of every kind, as users have them, through decoding, `predict` and `evaluate`: float files far beyond
full scale, stereo files whose channels cancel in the mono mix, microphone arrays of more channels than ffmpeg
mixes, a folder named like a file. Each decodes to the right waveform or is refused in one line naming the file;
none reaches the model as NaN, silence or quantisation noise without a word."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.data.audio import AudioFileError, decode_audio, find_audio_files, iter_audio_chunks
from hfspeech.errors import UsageError
from hfspeech.inference.waveforms import mono_samples
from tests.conftest import save_random_baseline

RATE = 16000


def tone(amplitude: float = 0.5, frequency: float = 1000.0, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def decoded_both_ways(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`decode_audio` of the whole file and `iter_audio_chunks` (predict's long-audio path), concatenated."""
    return decode_audio(path, RATE), np.concatenate(list(iter_audio_chunks(path, RATE, chunk_seconds=1)))


def refusals_both_ways(path: Path) -> tuple[str, str]:
    with pytest.raises(AudioFileError) as whole:
        decode_audio(path, RATE)
    with pytest.raises(AudioFileError) as chunked:
        list(iter_audio_chunks(path, RATE))
    return str(whole.value), str(chunked.value)


@pytest.fixture(scope="module")
def random_cnn(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("audio_inputs") / "cnn", "cnn", ["low", "high"], 0.5,
                                n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


@pytest.mark.parametrize("amplitude", [1e20, 3e38])
def test_a_float_wav_far_beyond_full_scale_is_refused_naming_the_file(tmp_path, amplitude):
    # Decoded as it was, 3e38 gave NaN scores and 1e20 the scores of silence (the extractor's variance overflowed).
    path = tmp_path / "corrupt float.wav"
    sf.write(path, tone(amplitude), RATE, subtype="FLOAT")
    for message in refusals_both_ways(path):
        assert message.startswith(f"{path}: samples reach {amplitude:.3g}, over ") and "[-1, 1]" in message


def test_float_audio_above_full_scale_within_the_limit_still_decodes(tmp_path):
    # Headroom (4.0) and int16 PCM values written unscaled as float (+-32767) are gains the models' normalisation
    # removes: refused, they would turn working files into errors.
    for amplitude in (4.0, 32767.0):
        path = tmp_path / f"loud_{amplitude:g}.wav"
        sf.write(path, tone(amplitude), RATE, subtype="FLOAT")
        for waveform in decoded_both_ways(path):
            assert np.abs(waveform).max() == pytest.approx(amplitude, rel=1e-3)


def test_an_array_far_beyond_full_scale_is_a_usage_error():
    with pytest.raises(UsageError, match=r"^waveform: samples reach 1e\+20, over "):
        mono_samples(tone(1e20))
    assert np.abs(mono_samples(tone(2.0))).max() == pytest.approx(2.0, rel=1e-3)


def test_the_baselines_extractor_refuses_a_clip_far_beyond_full_scale_as_it_refuses_nan():
    # transformers users call the extractor on arrays directly: 1e20 normalised to all zeros (variance overflowed).
    from hfspeech.features.waveform import WaveformPreprocessor
    from hfspeech.models import BASELINE_MODELS

    extractor = BASELINE_MODELS["cnn"].feature_extractor_class()
    with pytest.raises(ValueError, match=r"^input 1: samples reach 1e\+20, over 16777216 times full scale"):
        extractor([tone(), tone(1e20)], sampling_rate=RATE)
    with pytest.raises(ValueError, match=r"^input 0: samples reach 1e\+20"):
        WaveformPreprocessor(check_inputs=True)(tone(1e20))
    assert np.asarray(extractor(tone(32767.0), sampling_rate=RATE)["input_values"]).std() == pytest.approx(1, rel=1e-3)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_stereo_channels_that_cancel_in_the_mono_mix_are_refused_naming_the_file(tmp_path, subtype):
    # L and -L mixed to mono leave quantisation residue (PCM_16) or exact zeros (FLOAT); normalised by the
    # extractor, the residue was classified as if it were the recording.
    path = tmp_path / "out of phase.wav"
    sf.write(path, np.stack([tone(), -tone()], axis=1), RATE, subtype=subtype)
    for message in refusals_both_ways(path):
        assert message.startswith(f"{path}: its 2 channels cancel out when mixed to mono"), message


def test_a_stereo_file_with_nan_in_one_channel_is_named_for_its_nan_not_as_cancelling(tmp_path):
    right = -tone()
    right[5] = np.nan
    path = tmp_path / "stereo nan.wav"
    sf.write(path, np.stack([tone(), right], axis=1), RATE, subtype="FLOAT")
    assert refusals_both_ways(path) == (f"{path}: audio contains NaN or infinite samples",) * 2


def test_a_stereo_array_whose_channels_cancel_is_a_usage_error_as_the_file_is():
    with pytest.raises(UsageError, match=r"^waveform: its 2 channels cancel out when mixed to mono .* the mix is "
                                         r"silent; keep one channel"):
        mono_samples(np.stack([tone(), -tone()], axis=1))
    np.testing.assert_allclose(mono_samples(np.stack([tone(), tone()], axis=1)), tone() * np.sqrt(2), rtol=1e-6)


def test_a_stereo_file_with_one_silent_channel_decodes_to_the_other_at_minus_3_db(tmp_path):
    path = tmp_path / "left only.wav"
    sf.write(path, np.stack([tone(), np.zeros_like(tone())], axis=1), RATE, subtype="FLOAT")
    for waveform in decoded_both_ways(path):
        np.testing.assert_allclose(waveform, tone() * np.sqrt(0.5), atol=1e-6)


@pytest.mark.parametrize("channels", [9, 12, 32])
def test_more_channels_than_ffmpeg_has_a_layout_for_decode_as_their_average(tmp_path, channels):
    # ffmpeg mixes 1-8, 16 and 24 channels; these failed with "Couldn't initialize SwrContext ... buggy FFmpeg".
    gains = np.linspace(0.2, 1.0, channels, dtype=np.float32)
    path = tmp_path / f"array_{channels}.wav"
    sf.write(path, tone()[:, None] * gains[None, :], RATE, subtype="FLOAT")
    for waveform in decoded_both_ways(path):
        np.testing.assert_allclose(waveform, tone() * gains.mean(), atol=1e-5)


def test_an_mp3_with_cover_art_in_its_tag_cut_short_is_refused_as_truncated(tmp_path):
    # The Xing header was looked for in the file's first 16 KB only: behind a larger ID3 tag (cover art) the
    # file was not judged, and one cut to a third decoded as 1 s of its 3 s without a word.
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds=3.0), RATE, format="MP3", bitrate_mode="VARIABLE")
    tag_bytes = 100_000  # an ID3v2.4 tag of padding standing in for a picture; its size synchsafe, 7 bits a byte
    tag = b"ID3\x04\x00\x00" + bytes((tag_bytes >> shift) & 0x7F for shift in (21, 14, 7, 0)) + bytes(tag_bytes)
    audio = buffer.getvalue()
    whole, cut = tmp_path / "song.mp3", tmp_path / "song cut.mp3"
    whole.write_bytes(tag + audio)
    cut.write_bytes(tag + audio[: len(audio) // 3])
    assert decode_audio(whole, RATE).size == pytest.approx(3 * RATE, rel=0.02)
    for message in refusals_both_ways(cut):
        assert re.fullmatch(rf"{re.escape(str(cut))}: truncated MP3: header declares about 3\.\d+ s of audio, file "
                            r"holds [01]\.\d+ s", message), message
    with pytest.raises(AudioFileError, match=r"^<audio bytes without a file name>: truncated MP3"):
        decode_audio({"path": None, "bytes": tag + audio[: len(audio) // 3]}, RATE)


def test_a_folder_named_like_an_audio_file_is_not_listed_as_one(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), RATE)
    (tmp_path / "take2.wav").mkdir()  # export --quantize / stage --eval_dir stopped on it ("is a folder")
    assert find_audio_files(tmp_path) == [tmp_path / "a.wav"]


def test_predict_names_each_bad_file_in_one_line_and_scores_the_rest(tmp_path, random_cnn, capsys):
    sf.write(tmp_path / "good.wav", tone(), RATE)
    sf.write(tmp_path / "inverted.wav", np.stack([tone(), -tone()], axis=1), RATE)
    sf.write(tmp_path / "huge.wav", tone(3e38), RATE, subtype="FLOAT")
    sf.write(tmp_path / "array.wav", np.repeat(tone()[:, None], 9, axis=1), RATE)
    files = [str(tmp_path / name) for name in ("good.wav", "inverted.wav", "huge.wav", "array.wav")]
    assert cli(["predict", str(random_cnn), *files]) == 1
    out, err = capsys.readouterr()
    assert "nan" not in out and out.count("\n") == 2 and "good.wav: " in out and "array.wav: " in out
    first, second, count = err.splitlines()
    assert count == "2 of 4 files could not be read or decoded (each named above)"
    assert re.fullmatch(rf"error: {re.escape(files[1])}: its 2 channels cancel out when mixed to mono \(one is the "
                        r"other inverted: wired out of phase\?\), the mix is \d+ dB below its loudest channel; keep "
                        r"one channel, or invert one before mixing", first), first
    assert second == (f"error: {files[2]}: samples reach 3e+38, over 16777216 times full scale (1.0): not audio "
                      "levels (a corrupt float file?); scale the samples to [-1, 1]")


def test_evaluate_with_skip_bad_files_lists_the_cancelling_file(tmp_path, random_cnn):
    for label, frequency in (("low", 300.0), ("high", 2500.0)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(3):
            sf.write(tmp_path / "data" / label / f"{i}.wav", tone(frequency=frequency * (1 + i / 10)), RATE)
    bad = tmp_path / "data" / "low" / "inverted.wav"
    sf.write(bad, np.stack([tone(), -tone()], axis=1), RATE)
    assert cli(["evaluate", "--model", str(random_cnn), "--data_dir", str(tmp_path / "data"),
                "--output_dir", str(tmp_path / "eval"), "--skip_bad_files"]) in (0, None)
    report = json.loads((tmp_path / "eval" / "data_report.json").read_text())
    assert report["num_skipped"] == 1 and report["num_kept"] == 6
    [skipped] = [entry for entries in report["skipped"].values() for entry in entries]
    assert skipped["path"].endswith("low/inverted.wav") and "cancel out when mixed to mono" in skipped["problem"]
