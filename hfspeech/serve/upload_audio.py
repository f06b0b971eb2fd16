"""An upload's waveform, decoded once: a FLAC, Ogg or MP3 whose header declares at most `--max_seconds`.

`audio_length.refuse_audio_longer_than` counts a compressed upload in blocks before it is decoded (its header
may declare no length, or a false one), and `decode_audio` then decoded it again, whole: every FLAC, Ogg and
MP3 upload was decoded twice, an MP3 also sought through by ffmpeg (a 10-s MP3 served at 0.82x the requests
per second of before the count, FLAC at 0.92x). Yet libsndfile, as `soundfile.read` drives it, reads no more
frames than the header declares (a longer stream is cut there, for `decode_audio` as here): a declared length
within the limit bounds memory as a WAV's data size does, so such an upload is read once, by `decode_audio`'s
own call (`seek(0)`, then the declared frames: read in blocks, libsndfile's MP3 decoder gave other floats),
mixed and resampled as it mixes and resamples (`downmix_to_mono`, `soxr.resample` on the whole) and refused
as it refuses: the same waveform, bit for bit. What `decode_audio` leaves to ffmpeg because no header says how
long it is (a FLAC piped out of an encoder, `ffmpeg -f flac pipe:`; an MP3 without a Xing/VBRI frame count) was
also decoded twice, counted by ffmpeg first: it is decoded once, by `decode_audio`'s own ffmpeg decode
(`data.ffmpeg_decode`: its media-reference and rate checks, mono at the model's rate), no further than 1 s past
`--max_seconds` (10-s clips at 16 and 44.1 kHz, best of 15, three runs on a loaded 2-core machine: FLAC 1.4x to
3.0x, MP3 2.6x to 5.8x as fast. The price: a 2-hour piped FLAC is refused after decoding the limit's worth, 0.1 to 0.2 s and ~80 MB at 600 s, what
a 600-s upload takes, where the count's seek took 20 to 35 ms and no memory). Anything else (PCM; a compressed
header that declares more; a stream ffmpeg or libsndfile cannot read, or finds empty; a FLAC whose STREAMINFO
rate is not its frames') is measured by `refuse_audio_longer_than` and decoded by `decode_audio`, as before.
"""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
import soundfile

from hfspeech.data.audio import AudioFileError, checked_waveform, decode_audio, describe_source, downmix_to_mono
from hfspeech.data.ffmpeg_decode import decode_with_ffmpeg
from hfspeech.data.mp3_header import Mp3Head, inspect_mp3
from hfspeech.data.samples import UNDECLARED_FRAMES, cancelled_mix_problem, rate_problem
from hfspeech.data.wav_header import inspect_wav
from hfspeech.serve.audio_length import COMPRESSED, refuse_audio_longer_than, too_long


def decode_upload(audio: bytes, sampling_rate: int, max_seconds: float) -> np.ndarray:
    """`decode_audio`'s mono float32 waveform of `audio` at `sampling_rate`, or 413 (`ApiError`) when it holds
    more than `max_seconds` of audio, found without decoding more than that; `AudioFileError` as `decode_audio`."""
    damaged_wav = inspect_wav(None, audio)  # named by decode_audio at once
    mp3 = None if damaged_wav else inspect_mp3(None, audio)
    read = None
    if not damaged_wav and (mp3 is None or mp3.length):  # what decode_audio reads with libsndfile
        read = _read_compressed(audio, max_seconds)
    if not damaged_wav and read is None and (stream_rate := _undeclared_length_rate(audio, mp3)) is not None:
        if (waveform := _decode_with_ffmpeg_once(audio, sampling_rate, max_seconds, stream_rate)) is not None:
            return checked_waveform(waveform, describe_source({"path": None, "bytes": audio}), audio, mp3,
                                    sampling_rate)
    if read is None:
        refuse_audio_longer_than(audio, max_seconds)
        return decode_audio({"path": None, "bytes": audio}, sampling_rate)
    waveform, rate = read
    if rate != sampling_rate:
        import soxr

        waveform = soxr.resample(waveform, rate, sampling_rate)
    return checked_waveform(waveform, describe_source({"path": None, "bytes": audio}), audio, mp3, sampling_rate)


def _read_compressed(audio: bytes, max_seconds: float) -> Optional[tuple[np.ndarray, int]]:
    """(mono float32 at the upload's rate, that rate) of a FLAC, Ogg or MP3 (any channels) whose header declares
    at most `max_seconds` (libsndfile reads no more than that: `decode_audio`'s own read), else None: counted
    in blocks and decoded as before (no length, a longer one, a stream libsndfile cannot read or finds empty)."""
    try:
        opened = soundfile.SoundFile(io.BytesIO(audio))
    except Exception:  # not a format libsndfile reads, or a damaged header: decode_audio says which
        return None
    with opened:
        declared = opened.frames  # a FLAC piped out of an encoder says 2**63 - 1: unknown
        if opened.format not in COMPRESSED or declared > max_seconds * opened.samplerate:
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


def _undeclared_length_rate(audio: bytes, mp3: Optional[Mp3Head]) -> Optional[int]:
    """For an upload `decode_audio` leaves to ffmpeg because no header says how long it is: the rate a FLAC's
    STREAMINFO declares (piped out of an encoder; ffmpeg's timestamps count in it), 0 for an MP3 without a frame
    count (nothing to check); None for anything else."""
    if mp3 is not None:
        return None if mp3.length else 0
    if not audio.startswith(b"fLaC"):  # not opened again for a WAV (every PCM upload comes here): FLAC's magic
        return None
    try:
        with soundfile.SoundFile(io.BytesIO(audio)) as opened:
            undeclared = opened.format == "FLAC" and opened.frames >= UNDECLARED_FRAMES
            return opened.samplerate if undeclared else None
    except Exception:  # not a format libsndfile reads: decode_audio names it
        return None


def _decode_with_ffmpeg_once(audio: bytes, sampling_rate: int, max_seconds: float,
                             stream_rate: int) -> Optional[np.ndarray]:
    """`decode_audio`'s ffmpeg waveform (`data.ffmpeg_decode`: mono at `sampling_rate`) of an upload whose
    length only decoding finds, decoded once and no further than 1 s past `max_seconds` (413 past it: memory
    bounded by the limit); None when ffmpeg cannot decode it, so that `decode_audio` names the problem, or when
    its timestamps count at another rate than its samples (`stream_rate`: a FLAC whose STREAMINFO says 500 Hz,
    its frames 16 kHz, was cut at a 32nd of the limit), counted and decoded as before."""
    # Short of the stop, the samples are get_all_samples' (flushed, bit for bit); past it, cut there, less
    # what the decoder trims from the start (an encoder's delay: 0.14 s of an 8 kHz LAME MP3), well within 1 s
    samples = decode_with_ffmpeg({"path": None, "bytes": audio}, describe_source({"path": None, "bytes": audio}),
                                 sampling_rate, stop_seconds=max_seconds + 1.0, stream_rate=stream_rate,
                                 none_if_undecodable=True)
    if samples is not None and samples.shape[-1] > max_seconds * sampling_rate:
        raise too_long(max_seconds)
    return samples
