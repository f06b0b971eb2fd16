"""Signals the generators are made of: coloured noise, steady tones, and a few background-noise files.

Tones and noise are classes a tiny model tells apart in a few epochs, which is what the tests and benchmarks
need from their data; the noise files exercise the noise-folder augmentation without a noise corpus.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from hfspeech.errors import writing_to
from hfspeech.synthetic.reuse import THEN, already_holds, refuse_users_folder

NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}


def write_pcm16(path: str | Path, clip: np.ndarray, sampling_rate: int) -> None:
    """`clip` as a 16-bit WAV file at `path`, encoded in memory and written by Python (the same bytes as
    `sf.write(path, ...)`): libsndfile's own write hid a full disk's errno ("System error.", a traceback), while
    Python's `OSError` keeps it for `errors.writing_to` to name the folder in one line."""
    Path(path).write_bytes(pcm16_bytes(clip, sampling_rate))


def pcm16_bytes(clip: np.ndarray, sampling_rate: int) -> bytes:
    """`clip` as the bytes of a 16-bit WAV file."""
    encoded = io.BytesIO()
    sf.write(encoded, clip, sampling_rate, subtype="PCM_16", format="WAV")
    return encoded.getvalue()


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-variance noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0  # keep DC finite
    noise = np.fft.irfft(spectrum * freqs ** (-exponent / 2.0), n)
    noise -= noise.mean()
    return noise / (noise.std() + 1e-12)


def synth_tone_clip(frequency: Optional[float], rng: np.random.Generator, sampling_rate: int, seconds: float,
                    jitter: float = 0.02, noise: float = 0.01) -> np.ndarray:
    """A steady tone at `frequency` Hz (detuned by a random `jitter` fraction), or white noise when it is None,
    plus a little white noise: classes a tiny model tells apart in a few epochs (tests and benchmarks)."""
    n = max(1, int(seconds * sampling_rate))
    t = np.arange(n) / sampling_rate
    if frequency is None:
        signal = rng.standard_normal(n) * 0.3
    else:
        signal = 0.5 * np.sin(2 * np.pi * frequency * (1 + jitter * rng.standard_normal()) * t)
    return (signal + noise * rng.standard_normal(n)).astype(np.float32)


def _mains_hum(rng: np.random.Generator, num: int, sampling_rate: int) -> np.ndarray:
    """50 Hz mains with harmonics over a little white noise."""
    t = np.arange(num) / sampling_rate
    phases = rng.uniform(0, 2 * np.pi, size=5)
    noise = sum(np.sin(2 * np.pi * 50 * h * t + phases[h - 1]) / h for h in range(1, 6))
    return noise + 0.05 * rng.standard_normal(num)


def is_noise_file_name(name: str) -> bool:
    """A name `generate_noise_files` writes (`noise_03_blue.wav`): what `demo-data --noise_files` writes again."""
    return re.fullmatch(r"noise_[0-9]{2}_[a-z]+\.wav", name) is not None


def generate_noise_files(output_dir, n: int = 5, seconds: float = 3.0, sampling_rate: int = 16000,
                         seed: int = 0) -> list[Path]:
    """Write ``n`` background-noise wavs (white, pink, brown, blue, mains hum, then repeats).

    Small and deterministic (made again on every call: it takes milliseconds; a file already holding the same
    bytes is not written, so a read-only folder of them is reused), for exercising the noise-folder augmentation
    without a noise corpus. A folder holding other files (the user's noise recordings) is refused before anything
    is written, as `hfspeech demo-data --noise_files` refuses it.
    """
    root = Path(output_dir)
    rng = np.random.default_rng(seed)
    kinds = [*NOISE_COLOURS, "hum"]
    num = int(round(seconds * sampling_rate))
    files = {}
    for i in range(n):
        kind = kinds[i % len(kinds)]
        noise = _mains_hum(rng, num, sampling_rate) if kind == "hum" else colored_noise(rng, num, NOISE_COLOURS[kind])
        files[root / f"noise_{i:02d}_{kind}.wav"] = pcm16_bytes((0.5 * noise / np.abs(noise).max()).astype(np.float32),
                                                                sampling_rate)
    unwritten = {path: data for path, data in files.items() if not already_holds(path, data)}
    if unwritten:
        refuse_users_folder(root, is_noise_file_name, "noise files")
        with writing_to(root, THEN):
            root.mkdir(parents=True, exist_ok=True)
            for path, data in unwritten.items():
                path.write_bytes(data)
    return list(files)

