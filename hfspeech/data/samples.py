"""Decoded samples mixed to mono and checked before a model sees them: the rules every path shares (`decode_audio`,
`iter_audio_chunks`, arrays given to `inference.waveforms`).

Why a module of its own: the checks are the ones a decoder does not make. A float file (WAV, CAF, W64) stores any
number, so one holding NaN/inf, or values so large (1e20, 3e38) that a feature extractor's variance overflows,
decoded without a word: the model then gave NaN scores, or the scores of silence. And a stereo file whose
channels are one signal and its inverse (a microphone wired out of phase) mixes to nothing: the quantisation
residue, normalised to unit variance by the extractor, was classified as if it were the recording.
Live streams are mixed (`downmix_to_mono`) and resampled (`StreamResampler`) here too, as files are.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# The level rule (NaN/inf, beyond 2**24 x full scale: float32 squares overflow) and its wording, the extractors' own.
from hfspeech.features.waveform import NON_FINITE, level_problem, peak_problem

# Stereo -> mono as ffmpeg downmixes it in `decode_audio` (swresample's default matrix, centre at -3 dB):
# (L + R) / sqrt(2). Measured: equal to `decode_audio` of a stereo wav within 1e-6.
STEREO_TO_MONO_GAIN = float(np.sqrt(0.5))

# A mix more than 40 dB quieter than its louder channel has cancelled (one channel the other inverted): a real
# stereo recording, even with wide out-of-phase reverb, loses a few dB. Channels quieter than the floor are silence.
CANCELLED_MIX_RATIO = 0.01
SILENT_RMS = 1e-4

# A header's rate below this is damaged, not audio: resampled to 16 kHz, a 16,000-sample WAV declaring 1 Hz
# became 256 million samples (1 GB). No decoder has a floor (libsndfile, ffmpeg and soxr take 1 Hz); the lowest
# rates recordings use are 8000 Hz (telephony), 4000 and 2000 Hz (heart-sound data sets). Odd rates above it decode.
MIN_SAMPLING_RATE = 1000
# libsndfile's frame count of a stream whose header declares no length (a FLAC piped out of an encoder, a chained
# Ogg): 2**63 - 1. soundfile cannot read one whole (it allocates that many frames) nor to its end in blocks
# (its seek after the last block fails), so `decode_audio` leaves such files to ffmpeg.
UNDECLARED_FRAMES = 2**62


def downmix_to_mono(samples: np.ndarray) -> np.ndarray:
    """`[n]` or `[n, channels]` float samples -> mono float32 `[n]`.

    Stereo is mixed as ffmpeg mixes it in `decode_audio` ((L + R) / sqrt(2)), so a stereo stream gives the same
    waveform as the same audio read from a file. More channels have no layout in a raw stream (ffmpeg weighs
    front, centre, surround and LFE), so they are averaged: a gain the feature extractors' normalisation removes.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"audio samples must be [n] or [n, channels], got shape {samples.shape}")
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0])
    if samples.shape[1] == 2:
        with np.errstate(over="ignore"):  # beyond float32 (3e38 in both): inf, which `sample_problem` names
            return ((samples[:, 0] + samples[:, 1]) * np.float32(STEREO_TO_MONO_GAIN)).astype(np.float32)
    return samples.mean(axis=1, dtype=np.float32)


def rate_problem(sampling_rate: int, given: bool = False) -> Optional[str]:
    """Why a file's sampling rate (or, `given`, one a caller gave with an array) cannot be audio (below
    `MIN_SAMPLING_RATE`), or None: a header's is likely damaged, a caller's likely in kHz."""
    if sampling_rate >= MIN_SAMPLING_RATE:
        return None
    where, guess = ("", "a rate in kHz, not Hz?") if given else (" (from its header)", "a damaged header?")
    return (f"sampling rate of {sampling_rate} Hz{where} is below {MIN_SAMPLING_RATE} Hz, the lowest hfspeech "
            f"decodes (recordings use 2000 Hz and up, telephone speech 8000): {guess}")


def sample_problem(samples: np.ndarray, source: str | bytes | None = None) -> Optional[str]:
    """What makes decoded samples unusable (`features.waveform.level_problem`: NaN/inf, or far too loud), or None.

    Samples decoded from `source` (a path or a file's bytes) that are not finite may be finite in the file: a
    float64 WAV holding 1e200 overflows float32, stereo at 3e38 overflows in the mix, a peak near float32's
    limit in the resampler. The file is then read again (only then) to give the right reason."""
    problem = level_problem(samples)
    return _file_sample_problem(source) if problem == NON_FINITE and source is not None else problem


def _file_sample_problem(source: str | bytes) -> str:
    """`sample_problem` of the file's own values, read by libsndfile as float64 block by block."""
    import io

    import soundfile as sf

    peak = 0.0
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            while len(block := opened.read(1 << 16, dtype="float64")):
                if not np.isfinite(block).all():
                    return NON_FINITE
                peak = max(peak, float(np.abs(block).max()))
    except Exception:  # a file libsndfile cannot read (ffmpeg decoded it): its samples are what we know
        return NON_FINITE
    return peak_problem(peak) or NON_FINITE


def cancelled_mix_problem(samples: np.ndarray, mono: np.ndarray) -> Optional[str]:
    """A problem when the channels of `samples` ([n, channels]) cancel out in their mono mix `mono`, else None."""
    meter = MixMeter()
    meter.push(samples, mono)
    return meter.problem()


class MixMeter:
    """`cancelled_mix_problem` of a clip read block by block (`push` each block and its mix, then `problem`): each
    channel's energy and the mix's, summed in float64 by `einsum` without a float64 copy of the samples
    (`np.square(samples, dtype=np.float64)` of a 10-minute 48 kHz stereo clip was a 438 MB temporary)."""

    def __init__(self) -> None:
        self.frames = 0
        self.channels: Optional[np.ndarray] = None  # each channel's sum of squares; None for mono
        self.mixed = 0.0

    def push(self, samples: np.ndarray, mono: np.ndarray) -> None:
        self.frames += len(samples)
        if samples.ndim != 2 or samples.shape[1] < 2 or not samples.size:
            return
        energies = np.einsum("ij,ij->j", samples, samples, dtype=np.float64)
        self.channels = energies if self.channels is None else self.channels + energies
        self.mixed += float(np.einsum("i,i->", mono, mono, dtype=np.float64))

    def problem(self) -> Optional[str]:
        if self.channels is None:
            return None
        loudest = float(np.sqrt(self.channels.max() / self.frames))
        mixed = float(np.sqrt(self.mixed / self.frames))
        if not loudest >= SILENT_RMS or mixed >= CANCELLED_MIX_RATIO * loudest:  # NaN: `sample_problem` names it
            return None
        level = f"{20 * np.log10(loudest / mixed):.0f} dB below its loudest channel" if mixed else "silent"
        return (f"its {len(self.channels)} channels cancel out when mixed to mono (one is the other inverted: wired "
                f"out of phase?), the mix is {level}; keep one channel, or invert one before mixing")


class StreamResampler:
    """Resample a stream chunk by chunk with `soxr.ResampleStream` (mono float32).

    The concatenated output equals `soxr.resample` of the whole signal exactly (measured: 0.0 difference for
    chunks of random sizes), so windows do not depend on how the audio was chunked. It is soxr's filter, as in
    `decode_audio`'s libsndfile path; ffmpeg's swresample (its torchcodec path) differs by up to ~0.09 of full
    scale for white noise near the Nyquist frequency (window scores: the bound `tests/test_long_audio.py`
    measures). A stream already at the target rate passes through untouched.
    """

    def __init__(self, input_rate: int, output_rate: int):
        self.input_rate, self.output_rate = int(input_rate), int(output_rate)
        self.stream = None
        if self.input_rate != self.output_rate:
            import soxr

            self.stream = soxr.ResampleStream(self.input_rate, self.output_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        return samples if self.stream is None else self.stream.resample_chunk(samples, last=last)


# The config attribute a model trained with `--trim_silence` carries (its `--trim_top_db`; absent or None: clips were
# not trimmed). Read back by inference, so a clip is cut as the training clips were, whatever runs the model.
TRIM_CONFIG_ATTRIBUTE = "trim_silence_top_db"


def trim_top_db_of(config) -> Optional[float]:
    """The `top_db` a model's clips were trimmed at in training (`TRIM_CONFIG_ATTRIBUTE`), None if untrimmed."""
    top_db = getattr(config, TRIM_CONFIG_ATTRIBUTE, None)
    return None if top_db is None else float(top_db)


# librosa's trim framing as `trim_span` uses it: short frames (512 samples, hop 128) so the cut lands within a few ms
# of the sound, not ~100 ms off. Frames are centred (half a frame of zeros before and after the clip).
TRIM_FRAME, TRIM_HOP = 512, 128


def stream_not_trimmed_warning(model: str, config) -> Optional[str]:
    """The line `hfspeech stream` prints and `hfspeech serve` logs (for its `/stream`) once, or None: a model trained
    on clips trimmed of silence sees a live stream untrimmed, since a stream has no clip ends to trim, so its windows
    are not what the model saw in training (nor what `predict` gives the same audio as a file). Here, below both."""
    if (top_db := trim_top_db_of(config)) is None:
        return None
    return (f"warning: {model} was trained on clips trimmed of silence (--trim_silence, --trim_top_db {top_db:g}); "
            "a stream is not trimmed: its windows are classified as they come")


def trim_span(waveform: np.ndarray, top_db: float = 40.0) -> tuple[int, int]:
    """`[start, end)` of the part of a clip `trim_silence` keeps (librosa's trim, by `TrimMeter`): all of it when
    librosa would keep nothing. One implementation for whole clips and long files chunk by chunk, so the two cannot
    drift apart, and no librosa import (~200 MB) where a server or `predict` only trims. Mono only: channels
    flattened into one would be trimmed as one long clip."""
    if np.ndim(waveform) != 1:
        raise ValueError(f"trim_span takes a mono clip (one dimension), not an array of shape {np.shape(waveform)}")
    meter = TrimMeter()
    meter.push(waveform)
    return meter.span(top_db)


class TrimMeter:
    """`trim_span` of a clip fed chunk by chunk (`push`, then `span`), in bounded memory: librosa's trim, a chunk at
    a time, holding one level per `TRIM_HOP` samples, not the clip (librosa's framed copy of a whole file is ~5x
    the signal: 833 MB peak for a 10-minute file, 410 MB untrimmed). Its arithmetic is librosa's (`feature.rms`,
    `amplitude_to_db` against the loudest frame), in float32 numpy: the same span to the sample as
    `librosa.effects.trim` on float32 clips (`tests/test_lead30.py`). Chunks may be of any size."""

    def __init__(self) -> None:
        self.pending = np.zeros(TRIM_FRAME // 2, np.float32)  # centred frames: zeros before the clip
        self.levels: list[np.ndarray] = []
        self.samples = 0

    def push(self, chunk: np.ndarray) -> None:
        self.samples += chunk.size
        self._measure(np.concatenate([self.pending, np.asarray(chunk, np.float32).reshape(-1)]))

    def _measure(self, buffer: np.ndarray) -> None:
        """The RMS of each whole frame in `buffer`; the rest waits for the next chunk (frames overlap by 384)."""
        if buffer.size >= TRIM_FRAME:
            frames = np.lib.stride_tricks.sliding_window_view(buffer, TRIM_FRAME)[::TRIM_HOP]
            self.levels.append(np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=-1)))
            buffer = buffer[len(frames) * TRIM_HOP :]
        self.pending = buffer.copy()

    def span(self, top_db: float) -> tuple[int, int]:
        """`trim_span` of everything pushed (call once, at the end)."""
        self._measure(np.concatenate([self.pending, np.zeros(TRIM_FRAME // 2, np.float32)]))
        levels = np.concatenate(self.levels) if self.levels else np.zeros(0, np.float32)
        loud = np.flatnonzero(_decibels(levels) > -top_db)
        if not loud.size:
            return 0, self.samples
        return int(loud[0]) * TRIM_HOP, min(self.samples, (int(loud[-1]) + 1) * TRIM_HOP)


def _decibels(levels: np.ndarray) -> np.ndarray:
    """librosa's `amplitude_to_db(levels, ref=np.max, top_db=None)`, step for step (amin 1e-5, squared)."""
    if not levels.size:
        return levels
    power, ref = np.square(levels), np.max(levels) ** 2
    decibels = 10.0 * np.log10(np.maximum(1e-10, power))
    decibels -= 10.0 * np.log10(np.maximum(1e-10, ref))
    return decibels


def trim_silence(waveform: np.ndarray, top_db: float = 40.0) -> np.ndarray:
    """Cut leading and trailing parts quieter than `top_db` below the clip's peak (librosa's trim); a clip
    silent throughout is returned unchanged rather than emptied."""
    start, end = trim_span(waveform, top_db)
    return waveform[start:end]


def trimmed_as_trained(waveform: np.ndarray, config) -> tuple[int, np.ndarray]:
    """(the sample it starts at, `waveform` trimmed as the model's training clips were: `trim_top_db_of(config)`).
    The start keeps window times as times in the file. A model trained untrimmed gets the waveform untouched."""
    top_db = trim_top_db_of(config)
    if top_db is None:
        return 0, waveform
    start, end = trim_span(waveform, top_db)
    return start, waveform[start:end]
