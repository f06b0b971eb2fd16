"""An upload's waveform from one read of its header: `decode_audio`'s waveform, bit for bit.

libsndfile, as `soundfile.read` drives it, reads no more frames than the header declares (a longer stream is cut
there, for `decode_audio` as here): a declared length within `--max_seconds` bounds memory as a WAV's data size
does. So one libsndfile open of any upload it reads (`_read_declared`: PCM, FLAC, Ogg, an MP3 with a frame count)
gives its format, rate and declared frames and, within the limit, `decode_audio`'s own read (`seek(0)`, then the
declared frames, block by block: `data.mono_read`, holding the mono waveform, not the channels), refused, mixed and
resampled as it does: a compressed upload is not counted first (a 10-s MP3 served at 0.82x the requests per second
with the count), a WAV not opened again to be measured and decoded (10 s: 1.0 -> 0.92-0.97 ms). An upload whose
length no header declares (a FLAC piped out of an encoder, `ffmpeg -f flac pipe:`, whose STREAMINFO rate that open
gives; an MP3 without a Xing/VBRI frame count) is decoded by `decode_audio`'s
ffmpeg decode (`data.ffmpeg_decode`: its media-reference and rate checks), no further than 1 s past the limit
(10-s MP3: 2.6x to 5.8x as fast as counting first). The FLAC is counted first all the same
(`audio_length.ffmpeg_seconds`, samples a frame at a time, ~9 ms per 10 s): ffmpeg's stop follows its frame
numbers, which a crafted file repeats (60 s decoded 32.8 s for an 11-s stop). The rest (what libsndfile cannot
read: M4A, WebM; a header declaring more; a stream found empty or damaged; a FLAC whose STREAMINFO rate is not its
frames') is measured by `audio_length`, then decoded by `decode_audio`. On a machine where torchcodec cannot load
FFmpeg's libraries, an upload only FFmpeg decodes (the web page's WebM recordings, M4A ...) is the server's failure:
a 500 `ffmpeg_unavailable` (not the client's 400 `undecodable_audio`), and one warning in the server's log.
"""

from __future__ import annotations

import functools
import io
import logging
from typing import NamedTuple, Optional

import numpy as np
import soundfile

from hfspeech.data.audio import checked_waveform, decode_audio, describe_source
from hfspeech.data.ffmpeg_decode import decode_with_ffmpeg
from hfspeech.data.mono_read import read_mono
from hfspeech.data.mp3_header import Mp3Head, inspect_mp3
from hfspeech.data.samples import UNDECLARED_FRAMES
from hfspeech.data.system_libraries import DECODED_WITHOUT_FFMPEG, NEEDS_FFMPEG, FfmpegUnavailableError
from hfspeech.data.wav_header import inspect_wav
from hfspeech.serve.audio_length import ffmpeg_seconds, refuse_audio_longer_than, too_long
from hfspeech.serve.errors import ApiError

UPLOAD = describe_source({"path": None, "bytes": b"..."})  # decode_audio's name of bytes: "<audio bytes without ...>"
server_log = logging.getLogger("uvicorn.error")  # beside uvicorn's own lines, as the runner's start-up warnings


class Declared(NamedTuple):
    """What libsndfile's one open of an upload found: its format, rate and declared frames, and when they are
    within the limit, the waveform read (mono float32 at the model's rate); `Declared()` when libsndfile cannot
    open the upload, or is not asked to (an MP3 without a frame count)."""

    format: str = ""
    rate: int = 0
    frames: int = 0
    waveform: Optional[np.ndarray] = None


def decode_upload(audio: bytes, sampling_rate: int, max_seconds: float) -> np.ndarray:
    """`decode_audio`'s mono float32 waveform of `audio` at `sampling_rate`, or 413 (`ApiError`) when it holds
    more than `max_seconds` of audio, found without decoding more than that; `AudioFileError` as `decode_audio`;
    500 `ffmpeg_unavailable` when it needs FFmpeg, which this machine's torchcodec cannot load."""
    try:
        return _decode_upload(audio, sampling_rate, max_seconds)
    except FfmpegUnavailableError:
        raise ffmpeg_unavailable() from None


def ffmpeg_unavailable() -> ApiError:
    """The server's 500 for an upload only FFmpeg decodes, where it cannot (the client's file may be fine: not
    the 400 `undecodable_audio`), told once in the server's log: /health says ok, as WAV and the rest decode."""
    _warn_of_missing_ffmpeg()
    return ApiError(500, "ffmpeg_unavailable", "upload: this server cannot decode this format: it needs FFmpeg, "
                    f"which the server cannot load; {DECODED_WITHOUT_FFMPEG}")


@functools.cache  # once per server process, not per request
def _warn_of_missing_ffmpeg() -> None:
    server_log.warning("uploads only FFmpeg decodes (WebM, as the web page records; M4A, WMA ...) are answered 500 "
                       "ffmpeg_unavailable: they need %s; %s", NEEDS_FFMPEG, DECODED_WITHOUT_FFMPEG)


def _decode_upload(audio: bytes, sampling_rate: int, max_seconds: float) -> np.ndarray:
    if inspect_wav(None, audio):  # a damaged WAV: decode_audio names the damage at once
        return decode_audio({"path": None, "bytes": audio}, sampling_rate)
    mp3 = inspect_mp3(None, audio)
    read = mp3 is None or mp3.length  # as decode_audio: libsndfile may stop early in an MP3 without a frame count
    declared = _read_declared(audio, sampling_rate, max_seconds) if read else Declared()
    if declared.waveform is not None:
        return checked_waveform(declared.waveform, UPLOAD, audio, mp3, sampling_rate)
    if (stream_rate := _undeclared_length_rate(audio, mp3, declared)) is not None:
        if stream_rate and ffmpeg_seconds(audio, max_seconds) > max_seconds:  # a FLAC's frame numbers can lie
            raise too_long(max_seconds)  # (ffmpeg's stop follows them: a crafted one decoded 33 s for a 10-s stop)
        if (waveform := _decode_with_ffmpeg_once(audio, sampling_rate, max_seconds, stream_rate)) is not None:
            return checked_waveform(waveform, UPLOAD, audio, mp3, sampling_rate)
    refuse_audio_longer_than(audio, max_seconds)
    return decode_audio({"path": None, "bytes": audio}, sampling_rate)


def _read_declared(audio: bytes, sampling_rate: int, max_seconds: float) -> Declared:
    """libsndfile's one open of `audio` (`Declared()` when it cannot open it: decode_audio says why), read as
    `decode_audio` reads it (any channels) when it declares at most `max_seconds`; not read when it declares
    more (a piped FLAC says 2**63 - 1: unknown), is damaged part-way or empty: measured and decoded as before."""
    try:
        opened = soundfile.SoundFile(io.BytesIO(audio))
    except Exception:  # not a format libsndfile reads, or a damaged header
        return Declared()
    with opened:
        header = Declared(opened.format, opened.samplerate, opened.frames)
        if header.frames > max_seconds * header.rate:
            return header
        # block by block (`data.mono_read`): refused, mixed and resampled as `decode_audio`'s read, holding the mono
        # waveform, not the channels (a 245 KB FLAC of 599 s, 8 channels at 96 kHz, took 5.5 GB read whole)
        waveform = read_mono(opened, header.frames, sampling_rate, UPLOAD)
    return header._replace(waveform=waveform)  # None: damaged part-way or empty, ffmpeg decides


def _undeclared_length_rate(audio: bytes, mp3: Optional[Mp3Head], declared: Declared) -> Optional[int]:
    """For an upload `decode_audio` leaves to ffmpeg because no header says how long it is: 0 for an MP3 without
    a frame count (nothing to check), the rate of a FLAC whose STREAMINFO declares no length (piped out of an
    encoder; ffmpeg's timestamps count in it); None for anything else (a FLAC behind an ID3 tag, which libsndfile
    also opens, is measured and decoded as before: only the magic at byte 0 marks one)."""
    if mp3 is not None:
        return None if mp3.length else 0
    undeclared = declared.format == "FLAC" and declared.frames >= UNDECLARED_FRAMES and audio.startswith(b"fLaC")
    return declared.rate if undeclared else None


def _decode_with_ffmpeg_once(audio: bytes, sampling_rate: int, max_seconds: float,
                             stream_rate: int) -> Optional[np.ndarray]:
    """`decode_audio`'s ffmpeg waveform (`data.ffmpeg_decode`: mono at `sampling_rate`) of an upload whose
    length only decoding finds, decoded no further than 1 s past `max_seconds` (413 past it: memory
    bounded by the limit); None when ffmpeg cannot decode it, so that `decode_audio` names the problem, or when
    its timestamps count at another rate than its samples (`stream_rate`, 0 for any: a FLAC whose STREAMINFO
    says 500 Hz, its frames 16 kHz, was cut at a 32nd of the limit), measured and decoded as before."""
    # Short of the stop, the samples are get_all_samples' (flushed, bit for bit); past it, cut there, less
    # what the decoder trims from the start (an encoder's delay: 0.14 s of an 8 kHz LAME MP3), well within 1 s
    samples = decode_with_ffmpeg({"path": None, "bytes": audio}, UPLOAD, sampling_rate,
                                 stop_seconds=max_seconds + 1.0, stream_rate=stream_rate, none_if_undecodable=True)
    if samples is not None and samples.shape[-1] > max_seconds * sampling_rate:
        raise too_long(max_seconds)
    return samples
