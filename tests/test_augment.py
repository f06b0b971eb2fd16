"""WaveformAugmenter: each augmentation does what it says, reproducibly, and bad configs fail."""

import random

import numpy as np
import pytest
import torch

from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.synthetic.signals import generate_noise_files

SR = 16000


def tone(freq=440.0, seconds=1.0):
    t = np.arange(int(SR * seconds)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 3 * freq * t)
    return wave.astype(np.float32)


def snr_db(clean, noisy):
    clean, noise = clean.astype(np.float64), (noisy - clean).astype(np.float64)
    return 10 * np.log10(np.mean(clean**2) / np.mean(noise**2))


def dominant_freq(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / SR)[spectrum.argmax()]


FULL = dict(noise_snr_db=(5.0, 20.0), noise_prob=1.0, speed_factors=(0.9, 1.1), speed_prob=1.0,
            gain_db=6.0, time_shift_seconds=0.1)


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    generate_noise_files(root, n=5, seconds=2.0, sampling_rate=SR)
    return str(root)


def test_disabled_config_returns_input_unchanged():
    config = AugmentationConfig()
    assert not config.enabled
    x = tone()
    assert np.array_equal(WaveformAugmenter(config, SR)(x), x)
    # p=0 switches the whole chain off even when augmentations are configured
    assert np.array_equal(WaveformAugmenter(AugmentationConfig(**FULL, p=0.0), SR)(x), x)


def test_white_noise_snr_is_in_range():
    aug = WaveformAugmenter(AugmentationConfig(noise_snr_db=(10.0, 20.0), noise_prob=1.0), SR)
    x = tone()
    snrs = [snr_db(x, aug(x)) for _ in range(30)]
    assert all(9.7 <= s <= 20.3 for s in snrs), snrs
    assert max(snrs) - min(snrs) > 3  # drawn from the range, not fixed


def test_background_noise_from_folder(noise_dir):
    config = AugmentationConfig(noise_dir=noise_dir, noise_prob=1.0)
    assert config.enabled
    aug = WaveformAugmenter(config, SR)
    x = tone()
    snrs = [snr_db(x, aug(x)) for _ in range(20)]
    assert all(4.5 <= s <= 20.5 for s in snrs), snrs  # default (5, 20) dB


def test_noise_prob_zero_adds_nothing():
    aug = WaveformAugmenter(AugmentationConfig(noise_snr_db=(5.0, 5.0), noise_prob=0.0), SR)
    assert np.array_equal(aug(tone()), tone())


def test_gain_scales_within_bounds():
    aug = WaveformAugmenter(AugmentationConfig(gain_db=6.0), SR)
    x = tone()
    gains = []
    for _ in range(20):
        y = aug(x)
        ratio = y[np.abs(x) > 0.05] / x[np.abs(x) > 0.05]
        assert np.allclose(ratio, ratio[0], rtol=1e-4)
        gains.append(20 * np.log10(ratio[0]))
    assert all(-6.01 <= g <= 6.01 for g in gains) and max(gains) - min(gains) > 2


def test_time_shift_moves_without_rollover():
    x = np.zeros(SR, np.float32)
    x[SR // 2: SR // 2 + 100] = 1.0  # a click in the middle
    aug = WaveformAugmenter(AugmentationConfig(time_shift_seconds=0.1), SR)
    shifts = []
    for _ in range(10):
        y = aug(x)
        assert len(y) == len(x) and np.isclose(y.sum(), x.sum(), rtol=0.05)
        shifts.append(int(np.argmax(y > 0.5)) - SR // 2)
    assert all(abs(s) <= 0.1 * SR for s in shifts) and len(set(shifts)) > 1

    edge = np.ones(SR, np.float32)  # rollover=False: shifted-in samples are zeros, not wrapped
    y = WaveformAugmenter(AugmentationConfig(time_shift_seconds=0.1), SR, seed=1)(edge)
    assert y[0] == 0.0 or y[-1] == 0.0


@pytest.mark.parametrize("length", [100, 500, 1247, 1600, 2000])
def test_time_shift_takes_clips_shorter_than_the_shift(length):
    # audiomentations' Shift fails on these (its fade-out slice runs past the start); ClipShift caps the shift.
    aug = WaveformAugmenter(AugmentationConfig(time_shift_seconds=0.1), SR, seed=0)
    x = tone(seconds=length / SR)
    outs = [aug(x) for _ in range(30)]
    assert all(len(y) == length and np.all(np.isfinite(y)) for y in outs)
    assert length <= 500 or any(not np.array_equal(y, x) for y in outs)  # still shifted when there is room


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_length_and_pitch(factor):
    aug = WaveformAugmenter(AugmentationConfig(speed_factors=(factor,), speed_prob=1.0), SR)
    y = aug(tone())
    assert abs(len(y) - SR / factor) <= 2
    assert dominant_freq(y) == pytest.approx(440 * factor, abs=3)


def test_output_is_finite_float32_for_every_augmentation(noise_dir):
    aug = WaveformAugmenter(AugmentationConfig(**FULL, noise_dir=noise_dir), SR)
    for x in (tone(), tone().astype(np.float64), np.zeros(SR, np.float32), tone()[:10]):
        y = aug(x)
        assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y))
        assert not np.array_equal(y, x) or not x.any()


def test_same_seed_reproduces_other_seed_differs(noise_dir):
    config = AugmentationConfig(**FULL, noise_dir=noise_dir)
    inputs = [tone(f) for f in (300.0, 440.0, 550.0, 440.0)]
    a, b, c = (WaveformAugmenter(config, SR, seed=s) for s in (7, 7, 8))
    outs_a, outs_b, outs_c = ([aug(x) for x in inputs] for aug in (a, b, c))
    assert all(np.array_equal(p, q) for p, q in zip(outs_a, outs_b))
    assert not any(len(p) == len(q) and np.allclose(p, q) for p, q in zip(outs_a, outs_c))
    assert not np.array_equal(outs_a[1], outs_a[3])  # same input twice: fresh randomness per call


def test_global_random_state_is_left_alone():
    aug = WaveformAugmenter(AugmentationConfig(**FULL), SR)
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    aug(tone())
    assert (random.random(), np.random.rand()) == expected


class _AugmentedOnes(torch.utils.data.Dataset):
    def __init__(self):
        self.augment = WaveformAugmenter(AugmentationConfig(gain_db=10.0), SR, seed=0)

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.from_numpy(self.augment(np.ones(8, np.float32)))[0]


def test_dataloader_workers_do_not_repeat_each_other():
    def epoch_values():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(_AugmentedOnes(), batch_size=1, num_workers=2)
        return [torch.cat(list(loader)).tolist() for _ in range(2)]

    first = epoch_values()
    assert len(set(first[0])) == 4  # workers 0 and 1 get items 0,2 and 1,3: all different gains
    assert first[0] != first[1]  # a new epoch is not a replay
    assert epoch_values() == first  # but the run is reproducible from torch's seed


@pytest.mark.parametrize("kwargs", [
    dict(noise_snr_db=(20.0, 5.0)), dict(noise_snr_db=(5.0,)),
    dict(noise_snr_db=(5.0, float("inf"))),
    dict(speed_factors=()), dict(speed_factors=(0.9, -1.0)), dict(gain_db=0.0), dict(gain_db=-3.0),
    dict(time_shift_seconds=-0.1), dict(noise_prob=1.5), dict(speed_prob=-0.1), dict(p=2.0),
])
def test_bad_ranges_raise(kwargs):
    with pytest.raises(ValueError):
        AugmentationConfig(**kwargs)


def test_bad_noise_dir_names_the_folder(tmp_path):
    missing = tmp_path / "no-such-noise"
    with pytest.raises(ValueError, match="no-such-noise.* is not a folder"):
        WaveformAugmenter(AugmentationConfig(noise_dir=str(missing)), SR)
    empty = tmp_path / "empty-noise"
    empty.mkdir()
    (empty / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="empty-noise.* has no audio files"):
        WaveformAugmenter(AugmentationConfig(noise_dir=str(empty)), SR)


def test_lists_from_json_are_accepted_and_bad_input_shape_rejected():
    config = AugmentationConfig(noise_snr_db=[5, 10], speed_factors=[0.9, 1.0])
    assert config.noise_snr_db == (5.0, 10.0) and config.speed_factors == (0.9, 1.0)
    with pytest.raises(ValueError, match="1-D"):
        WaveformAugmenter(config, SR)(np.zeros((2, 100), np.float32))


def word_with_weak_edges(weak_seconds=0.05):
    """Silence, a weak consonant (-25 dB), a loud vowel, a weak consonant, silence: the cut says which survived."""
    silence, weak, loud = np.zeros(SR // 10), 0.018 * tone(3000.0, weak_seconds), tone(200.0, 0.2)
    return np.concatenate([silence, weak, loud, weak, silence]).astype(np.float32), len(weak), len(loud)


def test_endpoint_trim_cuts_into_weak_consonants_only_below_40_db():
    from hfspeech.data.augment_timing import EndpointTrim

    word, weak, loud = word_with_weak_edges()
    lengths = set()
    for top_db in (40.0, 20.0):
        trim = EndpointTrim(min_top_db=top_db, max_top_db=top_db, p=1.0)
        out = trim(samples=word, sample_rate=SR)
        assert any(np.array_equal(out, word[start : start + len(out)])  # a contiguous cut, not a rewrite
                   for start in range(len(word) - len(out) + 1))
        lengths.add(len(out))
        if top_db == 40.0:  # silence gone (to within a frame), the consonants kept
            assert loud + 2 * weak <= len(out) <= loud + 2 * weak + 2 * 512
        else:  # the consonants gone too
            assert loud - 512 <= len(out) <= loud + 512
    assert len(lengths) == 2


def test_endpoint_trim_in_the_augmenter_varies_and_reproduces():
    word, _, _ = word_with_weak_edges()
    config = AugmentationConfig(endpoint_trim_db=20.0)
    a, b = (WaveformAugmenter(config, SR, seed=3) for _ in range(2))
    outs_a, outs_b = [a(word) for _ in range(12)], [b(word) for _ in range(12)]
    assert all(np.array_equal(x, y) for x, y in zip(outs_a, outs_b))
    assert len({len(x) for x in outs_a}) >= 3  # p=0.5 and a threshold drawn per clip: several cuts
    assert any(len(x) == len(word) for x in outs_a) and all(len(x) <= len(word) for x in outs_a)
    with pytest.raises(ValueError):
        AugmentationConfig(endpoint_trim_db=-5.0)
