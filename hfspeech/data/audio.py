"""Decoding one audio file into a clean mono float32 waveform, or a clear error naming the file.

Every path into hfspeech (training data, evaluation data, `hfspeech predict`) decodes through
`decode_audio`, so a corrupt, empty, zero-length or NaN-filled file fails the same way everywhere:
with an `AudioFileError` whose message starts with the file's path and says what is wrong, never a
stack trace from deep inside ffmpeg. Decoding, downmixing and resampling are done by `datasets.Audio`
(torchcodec + ffmpeg), as in the rest of the Hugging Face stack.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
from datasets import Audio


class AudioFileError(ValueError):
    """An audio file that cannot be used: the message names the file and the problem."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def describe_source(audio: dict[str, Any]) -> str:
    """A name for an undecoded `Audio` value: its path, or a placeholder for in-memory bytes."""
    return audio.get("path") or "<audio bytes without a path>"


def decode_audio(audio: str | dict[str, Any], sampling_rate: int) -> np.ndarray:
    """Decode a file path or an undecoded `datasets.Audio` value (`{"path", "bytes"}`) to mono float32.

    Raises `AudioFileError` for a missing, empty (0 bytes), undecodable (corrupt or not audio),
    zero-length or non-finite (NaN/inf) file.
    """
    value = {"path": audio, "bytes": None} if isinstance(audio, (str, os.PathLike)) else audio
    value = {"path": str(value["path"]) if value.get("path") else None, "bytes": value.get("bytes")}
    name = describe_source(value)
    if value["bytes"] is None:
        if not value["path"] or not os.path.exists(value["path"]):
            raise AudioFileError(name, "file not found")
        if os.path.getsize(value["path"]) == 0:
            raise AudioFileError(name, "file is empty (0 bytes)")
    try:
        decoder = Audio(sampling_rate=sampling_rate, num_channels=1).decode_example(value)
        waveform = decoder.get_all_samples().data.numpy()
    except Exception as error:  # torchcodec/ffmpeg raise many types; the cause is kept in the chain
        reason = _short_reason(error)
        if "No audio frames were decoded" in reason:
            raise AudioFileError(name, "audio has zero length (no samples)") from error
        raise AudioFileError(name, f"cannot be decoded as audio (corrupt or unsupported format): {reason}") from error
    waveform = np.ascontiguousarray(waveform.reshape(-1), dtype=np.float32)
    if waveform.size == 0:
        raise AudioFileError(name, "audio has zero length (no samples)")
    if not np.isfinite(waveform).all():
        raise AudioFileError(name, "audio contains NaN or infinite samples")
    return waveform


def _short_reason(error: Exception) -> str:
    """The decoder's own words without torchcodec's C++ source location ('File.cpp:52, ')."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return re.split(r"\.cpp:\d+, ", text)[-1]


def trim_silence(waveform: np.ndarray, top_db: float = 40.0) -> np.ndarray:
    """Cut leading and trailing parts quieter than `top_db` below the clip's peak (librosa's trim).

    A clip that is silent throughout is returned unchanged rather than emptied.
    """
    import librosa

    # Short frames (512 samples, hop 128) so the cut lands within a few ms of the sound, not ~100 ms off.
    trimmed, _ = librosa.effects.trim(waveform, top_db=top_db, frame_length=512, hop_length=128)
    return trimmed if trimmed.size else waveform
