"""One spoken clip from the ``espeak-ng`` synthesiser: a random voice, rate and pitch, placed in noise.

espeak-ng runs offline and speaks many English voices (and other languages), so a classifier trained on
its clips has something non-trivial to learn while everything stays offline and reproducible: every random
choice comes from the `rng` the caller passes.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from typing import Optional, Sequence

import numpy as np
import soundfile as sf
import soxr

from hfspeech.data.system_libraries import on_this_system
from hfspeech.errors import HfspeechError, UsageError
from hfspeech.synthetic.signals import NOISE_COLOURS, colored_noise


class MissingToolError(HfspeechError, RuntimeError):
    """A program the generator runs (espeak-ng) is not installed."""


# English voices shipped with espeak-ng itself (the mbrola ``mb-*`` voices need extra packages).
ESPEAK_VOICES = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
# Variants from espeak-ng-data/voices/!v; "" keeps the voice's own timbre.
ESPEAK_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "croak", "whisper", "klatt", "klatt2", "klatt3", "Andy", "annie", "edward", "steph",
)
SPEED_WPM = (110, 210)
PITCH = (20, 80)
PEAK_DBFS = (-24.0, -3.0)
# How to install espeak-ng, and to mend a broken one, on this system (apt-get's words were given everywhere)
ESPEAK_INSTALL = on_this_system("with `apt-get install espeak-ng`", "with `brew install espeak-ng`",
                                "(the .msi of https://github.com/espeak-ng/espeak-ng/releases) and put its folder "
                                "on PATH")
ESPEAK_REINSTALL = on_this_system("apt-get install --reinstall espeak-ng espeak-ng-data", "brew reinstall espeak-ng",
                                  "run its .msi again")


def require_espeak() -> str:
    """The espeak-ng executable, or a `MissingToolError` that says how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingToolError(f"espeak-ng not found: install it {ESPEAK_INSTALL}")
    return exe


def check_voices(exe: str, voices: Sequence[str]) -> None:
    """Each voice says one word before any clip is made: a voice espeak-ng does not have (a mistyped language
    code) failed on a worker thread, a traceback after the other classes' clips were written. When its default
    voice fails too, espeak-ng itself is broken (its data folder missing: "Error processing file '.../phontab'"),
    which was reported as the first voice tried -- one the user never chose -- not existing."""
    for voice in dict.fromkeys(voices):
        if _speech_failure(exe, "-v", voice) is None:
            continue
        if (broken := _speech_failure(exe)) is not None:
            raise MissingToolError(f"{exe} does not work: {broken} (reinstall it: {ESPEAK_REINSTALL})")
        raise UsageError(f"{voice!r}: espeak-ng has no such voice (`espeak-ng --voices` lists its languages "
                         "and voices)")


def _speech_failure(exe: str, *voice: str) -> Optional[str]:
    """None when espeak-ng says a word with `voice` (`-v NAME`; none: its default voice), else the first line
    espeak-ng wrote to stderr (its exit status when it wrote none)."""
    result = subprocess.run([exe, "--stdout", *voice, "1"], capture_output=True)
    if result.returncode == 0 and len(result.stdout) > 44:
        return None
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return lines[0].strip() if lines else f"exit status {result.returncode}, no audio"


def espeak_version(exe: str) -> str:
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()


def _synthesize(exe: str, text: str, voice: str, speed: int, pitch: int, amplitude: int):
    """Run espeak-ng once; returns (float32 waveform, its sampling rate)."""
    cmd = [exe, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude),
           text]
    result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0 or len(result.stdout) <= 44:
        stderr = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(cmd)} failed: {stderr}")
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return audio, rate


def _spoken_word(exe: str, text: str, rng: np.random.Generator, sampling_rate: int,
                 voices: Sequence[str]) -> np.ndarray:
    """`text` said by a random voice among `voices`, trimmed to the speech, at a random peak level."""
    variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
    voice = voices[rng.integers(len(voices))] + (f"+{variant}" if variant else "")
    speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
    pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
    amplitude = int(rng.integers(60, 151))
    audio, rate = _synthesize(exe, text, voice, speed, pitch, amplitude)
    audio = soxr.resample(audio, rate, sampling_rate).astype(np.float64)

    # espeak pads with up to ~0.6 s of sentence pause; keep just the word.
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r} with voice {voice}")
    word = audio[loud[0]: loud[-1] + 1]
    return word * (10 ** (rng.uniform(*PEAK_DBFS) / 20) / np.abs(word).max())


def _place(word: np.ndarray, n_clip: int, rng: np.random.Generator) -> tuple[np.ndarray, slice]:
    """`word` at a random offset in `n_clip` zeros (a random window of it when it is longer); where it is."""
    clip = np.zeros(n_clip)
    if len(word) >= n_clip:
        start = int(rng.integers(len(word) - n_clip + 1))
        clip[:] = word[start: start + n_clip]
        return clip, slice(0, n_clip)
    offset = int(rng.integers(n_clip - len(word) + 1))
    clip[offset: offset + len(word)] = word
    return clip, slice(offset, offset + len(word))


def speak_clip(exe: str, text: str, rng: np.random.Generator, sampling_rate: int, clip_seconds: float,
               noise_snr_db: Optional[tuple[float, float]], voices: Sequence[str] = ESPEAK_VOICES) -> np.ndarray:
    """One clip: a random voice among ``voices`` says ``text`` at a random place, in white or pink noise at
    an SNR drawn from ``noise_snr_db`` (None: no noise)."""
    word = _spoken_word(exe, text, rng, sampling_rate, voices)
    n_clip = int(round(clip_seconds * sampling_rate))
    clip, speech = _place(word, n_clip, rng)
    if noise_snr_db is not None:
        colour = ("white", "pink")[rng.integers(2)]
        noise = colored_noise(rng, n_clip, NOISE_COLOURS[colour])
        speech_power = np.mean(clip[speech] ** 2)
        clip += noise * np.sqrt(speech_power / 10 ** (rng.uniform(*noise_snr_db) / 10))
    return np.clip(clip, -1.0, 1.0).astype(np.float32)
