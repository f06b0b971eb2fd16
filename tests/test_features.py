"""Tests for the in-model front end, SpecAugment and the waveform feature extractor."""

import numpy as np
import pytest
import torch

from hfspeech.features.feature_extraction import WaveformFeatureExtractor
from hfspeech.features.frontend import NORM_EPS, AudioFrontend, SpecAugment
from hfspeech.features.waveform import WaveformPreprocessor, float_samples
from hfspeech.models.configuration_baseline import AudioBaselineConfig

SR = 16000
FEATURE_TYPES = ["log_mel", "mfcc", "fbank"]


def tiny_config(**kwargs) -> AudioBaselineConfig:
    defaults = dict(n_mels=16, n_mfcc=8)
    defaults.update(kwargs)
    return AudioBaselineConfig(**defaults)


def pad_batch(clips, fill=0.0):
    """Stack clips into a padded batch with an attention mask, padding filled with ``fill``."""
    longest = max(len(c) for c in clips)
    values = torch.full((len(clips), longest), fill, dtype=torch.float32)
    mask = torch.zeros(len(clips), longest, dtype=torch.long)
    for i, clip in enumerate(clips):
        values[i, : len(clip)] = torch.as_tensor(clip, dtype=torch.float32)
        mask[i, : len(clip)] = 1
    return values, mask


def tone(freq: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


@pytest.mark.parametrize("n_fft,win_length,hop_length",
                         [(512, 400, 160), (256, 200, 100), (256, 255, 63), (64, 64, 1)])
def test_frame_count_is_length_over_hop_plus_one(n_fft, win_length, hop_length):
    frontend = AudioFrontend(tiny_config(n_fft=n_fft, win_length=win_length, hop_length=hop_length))
    for length in [1, hop_length - 1, hop_length, hop_length + 1, 5 * hop_length + 3, 4000]:
        features, frame_mask = frontend(torch.randn(1, length))
        assert features.shape[1] == length // hop_length + 1
        assert frame_mask.shape == (1, length // hop_length + 1) and bool(frame_mask.all())


@pytest.mark.parametrize("feature_type", FEATURE_TYPES)
def test_each_feature_type_gives_finite_features_of_right_shape(feature_type):
    config = tiny_config(feature_type=feature_type)
    frontend = AudioFrontend(config)
    features, frame_mask = frontend(torch.randn(3, 8000))
    expected_bins = config.n_mfcc if feature_type == "mfcc" else config.n_mels
    assert frontend.num_features == expected_bins
    assert features.shape == (3, 8000 // 160 + 1, expected_bins)
    assert frame_mask.dtype == torch.bool
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("n_fft,win_length,hop_length", [(512, 400, 160), (254, 200, 100), (256, 255, 63)])
def test_log_mel_matches_torch_stft_reference(n_fft, win_length, hop_length):
    """Framing + the radix-2 DFT must equal a zero-padded, centred torch.stft with a Hann window (odd windows
    and an n_fft / 2 that is odd included: the even and odd bins then number the same)."""
    frontend = AudioFrontend(tiny_config(normalize_features="none", n_fft=n_fft, win_length=win_length,
                                         hop_length=hop_length))
    x = torch.randn(2, 4000)
    features, _ = frontend(x)
    window = torch.hann_window(win_length)
    stft = torch.stft(x, n_fft, hop_length, win_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    reference = torch.log(torch.clamp(stft.abs().pow(2).transpose(1, 2) @ frontend.mel_filters, min=1e-6))
    torch.testing.assert_close(features, reference, atol=1e-4, rtol=1e-4)


def test_fbank_matches_a_frame_by_frame_kaldi_reference():
    """DC removal, pre-emphasis (first sample against itself), povey window, power, mel, log."""
    frontend = AudioFrontend(tiny_config(feature_type="fbank", normalize_features="none"))
    x = np.random.default_rng(0).standard_normal(3000) + 0.5  # a DC offset the frames must remove
    features, _ = frontend(torch.tensor(x, dtype=torch.float32)[None])
    padded = np.pad(x.astype(np.float32).astype(np.float64), (256, 256))
    povey = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)) ** 0.85
    for t in (0, 5, 18):
        frame = padded[t * 160 + 56 : t * 160 + 456].copy()  # the 400 centre samples of the 512 frame
        frame -= frame.mean()
        frame = np.concatenate([[frame[0] * (1 - 0.97)], frame[1:] - 0.97 * frame[:-1]]) * povey
        power = np.abs(np.fft.rfft(frame, 512)) ** 2
        expected = np.log(np.maximum(power @ frontend.mel_filters.double().numpy(), np.finfo(np.float32).eps))
        np.testing.assert_allclose(features[0, t].numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("feature_type", ["log_mel", "fbank"])
@pytest.mark.parametrize("mel_bin", [4, 9, 13])
def test_pure_tone_peaks_in_its_mel_bin(feature_type, mel_bin):
    n_mels, f_min, f_max = 16, 20.0, SR / 2
    # Filter centres computed independently: HTK and Kaldi share mel = 1127 ln(1 + f / 700).
    mels = np.linspace(1127 * np.log1p(f_min / 700), 1127 * np.log1p(f_max / 700), n_mels + 2)
    centre_hz = 700 * np.expm1(mels[1 + mel_bin] / 1127)
    frontend = AudioFrontend(tiny_config(feature_type=feature_type, n_mels=n_mels, normalize_features="none"))
    features, _ = frontend(torch.from_numpy(tone(centre_hz))[None])
    assert int(features[0].mean(0).argmax()) == mel_bin


@pytest.mark.parametrize("feature_type", FEATURE_TYPES)
@pytest.mark.parametrize("normalization", ["per_bin", "utterance"])
def test_normalised_features_are_standardised_over_valid_frames(feature_type, normalization):
    frontend = AudioFrontend(tiny_config(feature_type=feature_type, normalize_features=normalization))
    values, mask = pad_batch([np.random.randn(8000), np.random.randn(3000)])
    features, frame_mask = frontend(values, mask)
    valid = features[1, : 3000 // 160 + 1]
    if normalization == "per_bin":
        torch.testing.assert_close(valid.mean(0), torch.zeros(valid.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(valid.shape[1]), atol=1e-2, rtol=0)
    else:
        assert abs(float(valid.mean())) < 1e-4 and abs(float(valid.std(unbiased=False)) - 1) < 1e-2
    assert int(frame_mask[1].sum()) == 3000 // 160 + 1
    assert torch.all(features[1, 3000 // 160 + 1 :] == 0)


def test_utterance_normalisation_keeps_a_steady_tones_spectrum_and_per_bin_removes_it():
    """Per-bin CMVN subtracts each bin's mean over time, so a steady tone becomes ~0 everywhere."""
    low, high = tone(300.0)[None], tone(2500.0)[None]
    utterance = AudioFrontend(tiny_config(normalize_features="utterance"))
    per_bin = AudioFrontend(tiny_config(normalize_features="per_bin"))
    low_u, high_u = utterance(torch.from_numpy(low))[0][0], utterance(torch.from_numpy(high))[0][0]
    assert int(low_u[5:-5].mean(0).argmax()) < int(high_u[5:-5].mean(0).argmax())
    steady = per_bin(torch.from_numpy(low))[0][0][5:-5]
    assert float(steady.mean(0).abs().max()) < 0.5 < float(low_u[5:-5].mean(0).abs().max())


def normalisation_gain(config, clip: np.ndarray) -> float:
    """How much the clip's normalisation can scale a change of its log-mel features: 1 / std of the statistics
    it divides by (per bin, or over the whole clip), as computed from the clip's own unnormalised features."""
    raw = AudioFrontend(AudioBaselineConfig(**{**config.to_dict(), "normalize_features": "none"}))
    features = raw(torch.from_numpy(clip)[None])[0][0].double()
    per_bin = config.normalize_features == "per_bin"
    variance = features.var(0, unbiased=False) if per_bin else features.var(unbiased=False)
    return float((1 / torch.sqrt(variance + NORM_EPS)).max())


@pytest.mark.parametrize("feature_type", FEATURE_TYPES)
@pytest.mark.parametrize("fill", [0.0, 3.0])
@pytest.mark.parametrize("normalization", ["utterance", "per_bin", "none"])
def test_front_end_is_padding_invariant(feature_type, fill, normalization):
    """A clip's valid frames are the same alone and padded in a batch (whatever the padding holds).

    The tone with noise 80 dB down is the hard case: its weak bins are where float32 rounding
    differences between batch shapes used to show up (see the frontend's module docstring). Those
    differences (MKL's GEMM rounds the last rows of a product differently when their count is not a
    multiple of four: 1e-6 in log-mel) are what the tolerance allows, times what the normalisation makes
    of them: per-bin statistics over a two-frame clip divide by up to 1 / sqrt(1e-5).
    """
    config = tiny_config(feature_type=feature_type, normalize_features=normalization)
    frontend = AudioFrontend(config)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (16000, 7001, 1, 160, 321)]
    clips.append(tone(440.0, seconds=0.75) + 1e-4 * rng.standard_normal(12000).astype(np.float32))
    values, mask = pad_batch(clips, fill=fill)
    batched, frame_mask = frontend(values, mask)
    for i, clip in enumerate(clips):
        alone, _ = frontend(torch.from_numpy(clip)[None])
        frames = alone.shape[1]
        assert int(frame_mask[i].sum()) == frames
        gain = 1.0 if normalization == "none" else max(1.0, normalisation_gain(config, clip))
        torch.testing.assert_close(batched[i, :frames], alone[0], atol=1e-5 * gain, rtol=0)
        assert torch.all(batched[i, frames:] == 0)


def test_front_end_buffers_are_not_saved():
    frontend = AudioFrontend(tiny_config(feature_type="mfcc"))
    assert len(frontend.state_dict()) == 0
    assert {"window", "dft_basis_even", "dft_basis_odd", "mel_filters_by_parity", "dct_matrix"} <= \
        {name for name, _ in frontend.named_buffers()}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_front_end_scripts_with_torchscript():
    frontend = AudioFrontend(tiny_config(feature_type="fbank"))
    values, mask = pad_batch([np.random.randn(4000), np.random.randn(1000)])
    scripted = torch.jit.script(frontend)
    torch.testing.assert_close(scripted(values, mask)[0], frontend(values, mask)[0])


def augment_config(**kwargs):
    return tiny_config(apply_spec_augment=True, **kwargs)


def test_spec_augment_only_in_train_mode_and_when_enabled():
    features, frame_mask = AudioFrontend(tiny_config())(torch.randn(2, 16000))
    augment = SpecAugment(augment_config()).train()
    torch.manual_seed(0)
    assert not torch.equal(augment(features, frame_mask), features)
    assert torch.equal(augment.eval()(features, frame_mask), features)
    assert torch.equal(SpecAugment(tiny_config(apply_spec_augment=False)).train()(features, frame_mask), features)


def test_spec_augment_is_reproducible_under_manual_seed():
    features, frame_mask = AudioFrontend(tiny_config())(torch.randn(2, 16000))
    augment = SpecAugment(augment_config()).train()
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outputs.append(augment(features, frame_mask))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])


def test_spec_augment_time_masks_stay_within_valid_frames():
    """A short clip in a long batch: time masks must hit its 10 valid frames, not the padding."""
    values, mask = pad_batch([np.random.randn(16000), np.random.randn(9 * 160)])
    features, frame_mask = AudioFrontend(tiny_config())(values, mask)
    augment = SpecAugment(augment_config(num_freq_masks=0, num_time_masks=1, time_mask_width=5)).train()
    hits = 0
    for seed in range(20):
        torch.manual_seed(seed)
        valid = augment(features, frame_mask)[1, :10]
        hits += int((valid == 0).all(dim=-1).any())
    assert hits >= 12  # width 0 is drawn 1 time in 6; outside the valid frames it would be ~10%


def test_feature_extractor_pads_with_zeros_and_returns_attention_mask():
    extractor = WaveformFeatureExtractor()
    clips = [np.random.randn(500), np.random.randn(200) + 5.0]
    out = extractor(clips, sampling_rate=SR, padding=True, return_tensors="pt")
    assert out["input_values"].shape == (2, 500)
    assert out["attention_mask"].sum(-1).tolist() == [500, 200]
    assert torch.all(out["input_values"][1, 200:] == 0)
    assert abs(float(out["input_values"][1, :200].mean())) < 1e-4  # normalised over valid samples only


def test_feature_extractor_rejects_wrong_sampling_rate():
    with pytest.raises(ValueError, match="sampling rate"):
        WaveformFeatureExtractor()(np.zeros(100, dtype=np.float32), sampling_rate=8000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_feature_extractor_rejects_non_finite_samples(bad):
    clip = np.random.randn(100).astype(np.float32)
    clip[17] = bad
    with pytest.raises(ValueError, match="input 1: audio contains NaN or infinite samples"):
        WaveformFeatureExtractor()([np.random.randn(50), clip], sampling_rate=SR, padding=True)
    with pytest.raises(ValueError, match="input 0: audio contains NaN or infinite samples"):
        WaveformFeatureExtractor()(clip, sampling_rate=SR)


def test_feature_extractor_rejects_empty_clip():
    with pytest.raises(ValueError, match=r"input 1: audio has zero length \(no samples\)"):
        WaveformFeatureExtractor()([np.ones(10), np.array([])], sampling_rate=SR, padding=True)


def test_integer_pcm_is_scaled_as_a_decoded_file():
    """int16 / int32 / 8-bit PCM -> float32 in [-1, 1), as soundfile decodes the same WAV; no full scale, no guess."""
    np.testing.assert_array_equal(float_samples(np.array([-32768, 0, 16384], np.int16)), [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(float_samples(np.array([-2**31, 2**30], np.int32)), [-1.0, 0.5])
    np.testing.assert_array_equal(float_samples(np.array([0, 128, 192], np.uint8)), [-1.0, 0.0, 0.5])
    for bad, match in ((np.arange(3), "int64 have no PCM full scale"), (np.ones(3, bool), "must be numbers")):
        with pytest.raises(ValueError, match=match):
            float_samples(bad)


def test_feature_extractor_takes_integer_pcm_as_float32():
    """An int16 clip came out float64 (transformers normalises it in float64), which the model's float32
    weights refused with a torch dtype error; it is now the float clip's input, for the extractor and its
    numpy twin alike."""
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 300).astype(np.float32)
    pcm = np.round(clip * 32767).astype(np.int16)
    expected = WaveformFeatureExtractor()(pcm.astype(np.float32) / 32768, sampling_rate=SR, return_tensors="np")
    for extractor in (WaveformFeatureExtractor(), WaveformPreprocessor(SR, return_attention_mask=True)):
        for batch in (pcm, [pcm, pcm[:100]]):
            out = extractor(batch, sampling_rate=SR, padding="longest", return_tensors="np")
            assert out["input_values"].dtype == np.float32
            np.testing.assert_array_equal(out["input_values"][0], expected["input_values"][0])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(feature_type="spectrogram"),
        dict(pooling="median"),
        dict(win_length=600),
        dict(n_fft=511, win_length=400),
        dict(feature_type="mfcc", n_mfcc=20),
        dict(f_max=9000.0),
    ],
)
def test_config_rejects_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        tiny_config(**kwargs)
