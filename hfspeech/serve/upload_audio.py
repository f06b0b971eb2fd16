"""An upload's waveform, decoded once: a FLAC, Ogg or MP3 whose header declares at most `--max_seconds`.

`audio_length.refuse_audio_longer_than` counts a compressed upload in blocks before it is decoded (its header
may declare no length, or a false one), and `decode_audio` then decoded it again, whole: every FLAC, Ogg and
MP3 upload was decoded twice, an MP3 also sought through by ffmpeg (a 10-s MP3 served at 0.82x the requests
per second of before the count, FLAC at 0.92x). Yet libsndfile, as `soundfile.read` drives it, reads no more
frames than the header declares (a longer stream is cut there, for `decode_audio` as here): a declared length
within the limit bounds memory as a WAV's data size does, so such an upload is read once, by `decode_audio`'s
own call (`seek(0)`, then the declared frames: read in blocks, libsndfile's MP3 decoder gave other floats),
mixed and resampled as it mixes and resamples (`downmix_to_mono`, `soxr.resample` on the whole) and refused
as it refuses: the same waveform, bit for bit. Anything else (PCM; a compressed header that declares more,
or no length: a FLAC piped out of an encoder; an MP3 without a frame count, which ffmpeg decodes; more than
two channels; a stream libsndfile cannot read, or finds empty) is measured by `refuse_audio_longer_than` and
decoded by `decode_audio`, as before.
"""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
import soundfile

from hfspeech.data.audio import AudioFileError, checked_waveform, decode_audio, describe_source, downmix_to_mono
from hfspeech.data.mp3_header import inspect_mp3
from hfspeech.data.samples import cancelled_mix_problem, rate_problem
from hfspeech.data.wav_header import inspect_wav
from hfspeech.serve.audio_length import COMPRESSED, refuse_audio_longer_than


def decode_upload(audio: bytes, sampling_rate: int, max_seconds: float) -> np.ndarray:
    """`decode_audio`'s mono float32 waveform of `audio` at `sampling_rate`, or 413 (`ApiError`) when it holds
    more than `max_seconds` of audio, found without decoding more than that; `AudioFileError` as `decode_audio`."""
    damaged_wav = inspect_wav(None, audio)  # named by decode_audio at once
    mp3 = None if damaged_wav else inspect_mp3(None, audio)
    read = None
    if not damaged_wav and (mp3 is None or mp3.length):  # what decode_audio reads with libsndfile
        read = _read_compressed(audio, max_seconds)
    if read is None:
        refuse_audio_longer_than(audio, max_seconds)
        return decode_audio({"path": None, "bytes": audio}, sampling_rate)
    waveform, rate = read
    if rate != sampling_rate:
        import soxr

        waveform = soxr.resample(waveform, rate, sampling_rate)
    return checked_waveform(waveform, describe_source({"path": None, "bytes": audio}), audio, mp3, sampling_rate)


def _read_compressed(audio: bytes, max_seconds: float) -> Optional[tuple[np.ndarray, int]]:
    """(mono float32 at the upload's rate, that rate) of a mono or stereo FLAC, Ogg or MP3 whose header declares
    at most `max_seconds` (libsndfile reads no more than that: `decode_audio`'s own read), else None: counted
    in blocks and decoded as before (no length, a longer one, a stream libsndfile cannot read or finds empty)."""
    try:
        opened = soundfile.SoundFile(io.BytesIO(audio))
    except Exception:  # not a format libsndfile reads, or a damaged header: decode_audio says which
        return None
    with opened:
        declared = opened.frames  # a FLAC piped out of an encoder says 2**63 - 1: unknown
        if opened.format not in COMPRESSED or opened.channels > 2 or declared > max_seconds * opened.samplerate:
            return None
        if problem := rate_problem(opened.samplerate):  # as decode_audio refuses it, before soxr makes millions
            raise AudioFileError(describe_source({"path": None, "bytes": audio}), problem)
        try:
            opened.seek(0)  # as `soundfile.read` (decode_audio) reads: from frame 0, the declared frames
            samples = opened.read(declared, dtype="float32", always_2d=True)
        except Exception:  # damaged part-way: counted and decoded (or named) as before
            return None
    if not len(samples):  # no samples: ffmpeg decides
        return None
    mono = downmix_to_mono(samples)
    if problem := cancelled_mix_problem(samples, mono):  # as `decode_audio`'s libsndfile read refuses it
        raise AudioFileError(describe_source({"path": None, "bytes": audio}), problem)
    return mono, opened.samplerate
