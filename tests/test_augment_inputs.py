"""Augmentation and waveform front ends under careless input: bad flags refused by name before any data is read,
rate-independent augmentations, several processes that do not repeat each other, clips and arrays of every shape."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import TINY_CNN
from hfspeech.cli import main
from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.augment_speaker import VocalTractLengthPerturbation
from hfspeech.data.augment_timing import SpeedPerturbation
from hfspeech.features.feature_extraction import WaveformFeatureExtractor
from hfspeech.features.waveform import WaveformPreprocessor


def run_train(tmp_path, flags, capsys, data_dir) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(["train", "--data_dir", str(data_dir), "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
                     "--model_type", "cnn", "--config_overrides", TINY_CNN, *flags])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


FLAG_CASES = {
    "pitch beyond audiomentations' 24 semitones": (["--pitch_semitones", "30"], "--pitch_semitones must be"),
    "unreadable --noise_snr_db": (["--noise_snr_db", "loud,quiet"], "--noise_snr_db: expected comma-separated"),
    "missing --noise_dir": (["--noise_dir", "/no/such/noise"], "--noise_dir '/no/such/noise' is not a folder"),
    "--noise_prob above 1": (["--noise_prob", "1.5"], "--noise_prob must be in [0, 1]"),
    "zero speed factor": (["--speed_factors", "0,1"], "--speed_factors must be non-empty, each in (0, 4]"),
    "reversed --noise_snr_db": (["--noise_snr_db", "30,5"], "--noise_snr_db must be"),
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_bad_augmentation_flag_is_one_line_before_any_data_is_read(name, tmp_path, capsys):
    # The data folder does not exist: an error about the flag proves it was checked before the data.
    flags, message = FLAG_CASES[name]
    code, err = run_train(tmp_path, flags, capsys, tmp_path / "no-data-yet")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # nothing written for a run that cannot start


def test_an_undecodable_noise_file_is_named_when_the_flags_are_read(tmp_path, capsys):
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(noise / "good.wav", np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1, 16000)
    (noise / "broken.wav").write_bytes(os.urandom(300))
    code, err = run_train(tmp_path, ["--noise_dir", str(noise)], capsys, tmp_path / "no-data-yet")
    assert code == 2 and "broken.wav" in err and "cannot be decoded" in err and len(err.strip().splitlines()) == 1, err
    # The Python API says the same when the augmenter is built (before: an EOFError at the first draw of that file).
    with pytest.raises(ValueError, match="broken.wav.*cannot be decoded"):
        WaveformAugmenter(AugmentationConfig(noise_dir=str(noise), noise_prob=1.0), 16000)


def test_pitch_shift_range_is_checked_by_the_config():
    with pytest.raises(ValueError, match="pitch_semitones must be"):
        AugmentationConfig(pitch_semitones=25)
    AugmentationConfig(pitch_semitones=24)


def click_train(rate: int) -> np.ndarray:
    clicks = np.zeros(rate, np.float32)
    clicks[:: rate // 10] = 1.0
    return clicks


def energy_near_clicks(waveform: np.ndarray, rate: int) -> float:
    near = np.zeros(len(waveform), bool)
    for k in range(0, rate, rate // 10):
        near[max(0, k - rate // 200) : k + rate // 200] = True
    return float((waveform[near] ** 2).sum() / (waveform**2).sum())


def test_vtlp_smears_time_alike_at_8_and_16_khz():
    """The analysis frame is a duration: a fixed 512 samples was 64 ms at 8 kHz and smeared clicks twice as far."""
    kept = {}
    for rate in (8000, 16000):
        vtlp = VocalTractLengthPerturbation(1.1, 1.1, p=1.0)
        kept[rate] = energy_near_clicks(vtlp(click_train(rate), rate), rate)
    assert kept[8000] > 0.4 and abs(kept[8000] - kept[16000]) < 0.1, kept


def test_vtlp_at_16_khz_keeps_its_512_sample_frame():
    # The recipes train at 16 kHz: their augmentation is the same as before the frame became a duration.
    rng = np.random.default_rng(0)
    clip = rng.standard_normal(16000).astype(np.float32) * 0.1
    from scipy.signal import istft, stft

    from hfspeech.data.augment_speaker import warp_spectrum

    _, _, spectrum = stft(clip, nperseg=512)
    _, expected = istft(warp_spectrum(spectrum, 0.9, 512), nperseg=512)
    vtlp = VocalTractLengthPerturbation(0.9, 0.9, p=1.0)
    assert np.array_equal(vtlp(clip, 16000), expected[: len(clip)].astype(np.float32))


def test_speed_perturbation_never_empties_a_clip():
    speed = SpeedPerturbation((4.0,), p=1.0)
    out = speed(np.array([0.5], np.float32), 16000)
    assert out.size == 1 and np.isfinite(out).all()


def test_other_processes_of_a_distributed_run_draw_other_augmentations(monkeypatch):
    """Every rank seeds the same: rank 1's n-th clip got rank 0's n-th gain, speed and noise samples."""
    config = AugmentationConfig(gain_db=10.0, noise_snr_db=(5.0, 20.0), noise_prob=1.0)
    clip = np.ones(400, np.float32)

    def draws():
        augmenter = WaveformAugmenter(config, 16000, seed=0)
        return [augmenter(clip) for _ in range(3)]

    monkeypatch.delenv("RANK", raising=False)
    single = draws()
    monkeypatch.setenv("RANK", "0")
    assert all(np.array_equal(a, b) for a, b in zip(draws(), single))  # rank 0: a single-process run's stream
    monkeypatch.setenv("RANK", "1")
    rank1 = draws()
    assert not any(np.array_equal(a, b) for a, b in zip(rank1, single))
    assert all(np.array_equal(a, b) for a, b in zip(draws(), rank1))  # and still reproducible


@pytest.mark.parametrize("extractor", [WaveformFeatureExtractor(),
                                       WaveformPreprocessor(16000, return_attention_mask=True, check_inputs=True)])
def test_a_frames_by_channels_array_is_not_taken_for_a_batch_of_tiny_clips(extractor):
    stereo = np.random.default_rng(0).standard_normal((16000, 2)).astype(np.float32)  # soundfile's layout
    with pytest.raises(ValueError, match=r"shape \(16000, 2\).*channels"):
        extractor(stereo, sampling_rate=16000, return_tensors="np")
    batch = extractor(stereo.T.copy(), sampling_rate=16000, return_tensors="np")  # two clips of 16000: a batch
    assert batch["input_values"].shape == (2, 16000)


def test_a_list_of_torch_tensors_of_different_lengths_is_a_batch():
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (16000, 7000)]
    extractor = WaveformFeatureExtractor()
    expected = extractor(clips, sampling_rate=16000, padding=True, return_tensors="np")
    got = extractor([torch.from_numpy(c) for c in clips], sampling_rate=16000, padding=True, return_tensors="np")
    assert all(np.array_equal(expected[k], got[k]) for k in expected)
    preprocessed = WaveformPreprocessor(16000, return_attention_mask=True)([torch.from_numpy(c) for c in clips])
    assert all(np.array_equal(expected[k], preprocessed[k]) for k in expected)


PADDING_ARGS = {
    "max_length": dict(padding="max_length", max_length=20000),
    "truncation": dict(padding="max_length", max_length=5000, truncation=True),
    "pad_to_multiple_of": dict(padding="longest", pad_to_multiple_of=1024),
    "no attention mask": dict(padding=True, return_attention_mask=False),
}


@pytest.mark.parametrize("name", list(PADDING_ARGS))
def test_numpy_preprocessor_gives_what_the_extractor_gives_or_refuses(name):
    """The ONNX path's numpy stand-in took these arguments and ignored them: arrays of another shape, silently."""
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 7000)]
    kwargs = PADDING_ARGS[name]
    expected = WaveformFeatureExtractor()(clips, sampling_rate=16000, return_tensors="np", **kwargs)
    preprocessor = WaveformPreprocessor(16000, return_attention_mask=True)
    try:
        got = preprocessor(clips, sampling_rate=16000, return_tensors="np", **kwargs)
    except ValueError as error:
        assert "WaveformPreprocessor" in str(error) and next(iter(kwargs)) in str(error)
        return
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


FRONT_END_OVERRIDES = {
    "zero hop": ({"hop_length": 0}, "hop_length must be a whole number >= 1, got 0"),  # was a ZeroDivisionError
    "no mel bands": ({"n_mels": 0}, "n_mels must be a whole number >= 1"),
    "negative mask count": ({"num_freq_masks": -1, "apply_spec_augment": True},  # was a RuntimeError at step 1
                            "num_freq_masks must be a whole number >= 0"),
    "mask wider than the features": ({"freq_mask_width": 100, "apply_spec_augment": True},  # masked every bin
                                     "freq_mask_width (100) must not exceed the 16 feature bins"),
    "negative f_min": ({"f_min": -5.0}, "f_min must be >= 0"),
}


@pytest.mark.parametrize("name", list(FRONT_END_OVERRIDES))
def test_front_end_settings_that_cannot_work_are_one_line(name, tmp_path, capsys, tone_folder):
    import json

    override, message = FRONT_END_OVERRIDES[name]
    settings = {**json.loads(TINY_CNN), **override}
    capsys.readouterr()
    code = main(["train", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
                 "--max_train_samples", "8", "--model_type", "cnn", "--config_overrides", json.dumps(settings)])
    err = capsys.readouterr().err  # after the data's progress bars (the model is built once the labels are known)
    assert code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err, err


def test_the_gain_bound_holds_for_the_python_api_too():
    """The bound was checked on the command line only: `AugmentationConfig(gain_db=500)` built an augmenter
    that scaled clips by up to 1e25."""
    from hfspeech.data.augment import AugmentationConfig
    from hfspeech.errors import UsageError

    assert AugmentationConfig(gain_db=40).gain_db == 40
    with pytest.raises(UsageError, match=r"^gain_db must be at most 40 .* got 500$"):
        AugmentationConfig(gain_db=500)
