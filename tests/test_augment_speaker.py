"""Speaker and room augmentations: VTLP moves formants (here: a tone) by its warp factor, reverberation keeps
length and loudness but smears energy past a sound's end; both run seeded inside WaveformAugmenter."""

from __future__ import annotations

import numpy as np
import pytest

from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.augment_speaker import GeneratedReverb, VocalTractLengthPerturbation, warp_bins

RATE = 16000


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * RATE / len(wave))


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_vtlp_moves_a_tone_by_its_warp_factor_and_keeps_the_length(alpha):
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    transform = VocalTractLengthPerturbation(alpha, alpha, p=1.0)
    warped = transform(tone, RATE)
    assert warped.shape == tone.shape and warped.dtype == np.float32
    assert peak_hz(warped) == pytest.approx(1000 * alpha, rel=0.03)


def test_warp_maps_the_band_onto_itself():
    for alpha in (0.85, 1.0, 1.15):
        source = warp_bins(257, alpha)
        assert source[0] == 0 and source[-1] == pytest.approx(256) and np.all(np.diff(source) > 0)


def test_reverb_keeps_length_and_rms_and_adds_a_tail():
    wave = np.zeros(RATE, dtype=np.float32)
    wave[1000:3000] = np.random.default_rng(0).standard_normal(2000).astype(np.float32)
    out = GeneratedReverb(rt60=(0.4, 0.4), p=1.0)(wave, RATE)
    assert out.shape == wave.shape
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(wave**2)), rel=1e-4)
    assert np.sqrt(np.mean(out[3500:6000] ** 2)) > 0.01  # energy after the sound stopped


def test_augmenter_applies_them_reproducibly():
    config = AugmentationConfig(vtlp_warp=(0.9, 1.1), pitch_semitones=None, reverb_prob=0.5)
    assert config.enabled
    wave = np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.1
    first = [WaveformAugmenter(config, RATE, seed=3)(wave) for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    outs = [WaveformAugmenter(config, RATE, seed=s)(wave) for s in range(6)]
    assert any(not np.allclose(o, wave) for o in outs)


def test_pitch_shift_takes_a_read_only_clip():
    """Training clips come from Arrow as read-only views; PitchShift's stretcher refuses those unless copied."""
    config = AugmentationConfig(pitch_semitones=2.0)
    wave = np.random.default_rng(2).standard_normal(RATE).astype(np.float32) * 0.1
    wave.flags.writeable = False
    outs = [WaveformAugmenter(config, RATE, seed=s)(wave) for s in range(4)]  # half of them shifted
    assert all(o.shape == wave.shape for o in outs) and any(not np.allclose(o, wave) for o in outs)
