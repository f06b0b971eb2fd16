"""Decoding one audio file into a clean mono float32 waveform, or a clear error naming the file.

Every path into hfspeech (training data, evaluation data, `hfspeech predict`) decodes through `decode_audio`, so a
corrupt, truncated, empty, zero-length or NaN-filled file fails the same way everywhere: with an `AudioFileError` whose
message starts with the file's path and says what is wrong, never a stack trace from deep inside ffmpeg. Files
libsndfile reads (wav, flac, ogg, mp3; any channels) are decoded with soundfile and resampled with soxr, several times
faster than opening them with torchcodec; anything else goes through `datasets.Audio` (torchcodec + ffmpeg), as in the
rest of the Hugging Face stack, which also names the problem when a file is broken.

Files too long to hold in memory are read with `iter_audio_chunks` (same decoder and downmix, chunk by chunk,
streamed soxr resampling); live streams are downmixed and resampled with `downmix_to_mono`, `StreamResampler`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from hfspeech.data.ffmpeg_decode import decode_with_ffmpeg, ffmpeg_blocks, short_reason
from hfspeech.path_names import is_utf8, not_utf8_problem, refused_by_os, shown_name
from hfspeech.data.mono_read import read_mono, sndfile_blocks
from hfspeech.data.mp3_header import Mp3Head, inspect_mp3
from hfspeech.data.samples import (  # noqa: F401  (downmix_to_mono, StreamResampler, trim_silence: imported here)
    STEREO_TO_MONO_GAIN, UNDECLARED_FRAMES, StreamResampler, cancelled_mix_problem, downmix_to_mono, rate_problem,
    sample_problem, trim_silence)
from hfspeech.data.system_libraries import soundfile_module
from hfspeech.data.wav_header import inspect_wav
from hfspeech.errors import HfspeechError
from hfspeech.features.waveform import no_samples_problem  # the one wording of an empty clip

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif", ".aac", ".wma", ".webm",
                    ".au", ".caf", ".w64"}


def seconds_to_samples(seconds: float, sampling_rate: int) -> int:
    """The number of samples in `seconds` at `sampling_rate`, rounded to the nearest: every crop, window and
    frame length goes through here, so 0.7 s at 22,050 Hz is 15,435 samples on every path (`int()` would
    truncate 15,434.999... to 15,434)."""
    return int(round(seconds * sampling_rate))


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every audio file under `folder`, sorted (calibration clips), listed as training lists a folder
    (`data.folders.walk_audio_files`: `rglob` listed macOS forks `._x.wav` and skipped linked class folders);
    a folder named like a file (`take1.wav/`) is not one, a dangling link is. Nothing for a non-folder."""
    from hfspeech.data.folders import walk_audio_files  # folders imports this module's AUDIO_EXTENSIONS

    if not Path(folder).is_dir():
        return []
    return sorted(Path(path) for _, path in walk_audio_files(Path(folder))[0])


class AudioFileError(HfspeechError, ValueError):
    """An audio file that cannot be used: the message names the file (`shown_name`: one line) and the problem."""

    def __init__(self, path: str, problem: str):
        self.path = path  # as given: code that opens or matches the file reads it
        self.problem = problem
        super().__init__(f"{shown_name(path) if isinstance(path, (str, os.PathLike)) else path}: {problem}")

    def __reduce__(self):
        """Rebuilt from (path, problem), not from the one-string message: decoding workers
        (`--preprocessing_num_workers`) send the error back pickled, and one that could not be rebuilt killed
        the pool's result thread, so the run hung, holding its workers, instead of naming the file."""
        return type(self), (self.path, self.problem)


def describe_source(audio: dict[str, Any] | None) -> str:
    """A name for an undecoded `Audio` value: its path, or a placeholder for bytes or an empty cell (datasets
    that hfspeech loads have theirs named by dataset, split and row instead: `data.clip_names`)."""
    return (audio or {}).get("path") or ("<audio bytes without a file name>" if audio else "<empty audio cell>")


def decode_audio(audio: str | dict[str, Any], sampling_rate: int, source_rates: Optional[list] = None) -> np.ndarray:
    """Decode a file path or an undecoded `datasets.Audio` value (`{"path", "bytes"}`) to mono float32.

    Raises `AudioFileError` for a missing, unreadable, empty (0 bytes), truncated (a WAV or MP3 holding less
    audio than its header declares: `wav_header`, `mp3_header`), undecodable, zero-length or NaN/inf file; a file
    only ffmpeg decodes, on a machine where torchcodec cannot load FFmpeg, is the machine's `FfmpegUnavailableError`
    (`system_libraries`: not an `AudioFileError`, so `--skip_bad_files` does not skip it). `source_rates`: given, the
    file's own sample rate is appended, as read to decode it (`data.prepare` counts them for the data report).
    """
    value = {"path": audio, "bytes": None} if isinstance(audio, (str, os.PathLike)) else audio
    value = {"path": str(value["path"]) if value.get("path") else None, "bytes": value.get("bytes")}
    name = describe_source(value)
    if value["bytes"] is None:
        check_audio_path(value["path"] or "")
    mp3 = _check_header(name, value)  # an MP3 without a frame count: libsndfile may stop early; ffmpeg
    waveform = _read_with_soundfile(value, sampling_rate, source_rates) if mp3 is None or mp3.length else None
    if waveform is None:
        waveform = decode_with_ffmpeg(value, name, sampling_rate, source_rates=source_rates)
    source = value["bytes"] if value["bytes"] is not None else value["path"]
    return checked_waveform(waveform, name, source, mp3, sampling_rate)


def checked_waveform(waveform: np.ndarray, name: str, source, mp3: Optional[Mp3Head], sampling_rate: int) -> np.ndarray:
    """`decode_audio`'s last word on what a decoder gave (`source`: the file's path or bytes, re-read only to
    name bad samples): mono float32, or an `AudioFileError` for no samples (`_empty_problem`), samples no audio holds
    (`samples.sample_problem`) or an MP3 holding less than its header declares. The server's single read
    (`serve.upload_audio`) ends here too."""
    waveform = np.ascontiguousarray(waveform.reshape(-1), dtype=np.float32)
    if waveform.size == 0:
        raise AudioFileError(name, _empty_problem(name, source, sampling_rate))
    if problem := sample_problem(waveform, source):
        raise AudioFileError(name, problem)
    if mp3 is not None and (problem := mp3.problem(waveform.size, sampling_rate)):
        raise AudioFileError(name, problem)
    return waveform


def _empty_problem(name: str, source, sampling_rate: int) -> str:
    """`no_samples_problem` of an empty decode, from `source`'s header (5 samples at 384 kHz: none at 16 kHz)."""
    with contextlib.suppress(Exception):  # a header libsndfile cannot read: ffmpeg found no samples in it
        info = soundfile_module(name).info(io.BytesIO(source) if isinstance(source, bytes) else source)
        return no_samples_problem(info.frames, info.samplerate, sampling_rate)
    return no_samples_problem(0, sampling_rate, sampling_rate)


def _folder_problem(path: str) -> str:
    """A folder given as a file (`predict DIR` keeps a folder without audio to report it here, as that)."""
    with contextlib.suppress(HfspeechError, OSError):  # one that cannot be listed: the plain words
        if not find_audio_files(path):
            return "is a folder without audio files (hidden files and other extensions are left out)"
    return "is a folder, not an audio file"


def check_audio_path(path: str) -> None:
    """`AudioFileError` for a path that cannot hold audio: missing, a dangling symbolic link, a folder, a stream,
    empty. One `stat` for all of them: every clip of a data set passes here."""
    info = _stat_or_none(path) if path else None
    if info is None:
        if path and os.path.islink(path):
            raise AudioFileError(path, _broken_link_problem(path))
        raise AudioFileError(path or "<no path>", path and refused_by_os(path) or "file not found")  # LC_ALL=C
    if stat.S_ISDIR(info.st_mode):
        raise AudioFileError(path, _folder_problem(path))
    if kind := _stream_kind_of(info.st_mode):  # a FIFO listed in a manifest or in a folder: was "file is empty"
        raise AudioFileError(path, f"{kind}, not a file: a file is read more than once; save the audio to a file")
    if not is_utf8(path):  # decoders refuse it with "Expected ... 'str' but found type 'str'"
        raise AudioFileError(shown_name(path), not_utf8_problem(path))
    if info.st_size == 0:
        raise AudioFileError(path, "file is empty (0 bytes)")


def stream_kind(path: str) -> Optional[str]:
    """What a path given as a file is when it is a stream: `/dev/stdin` fed by a pipe, `<(cmd)`, a FIFO, a socket or
    a device (`/dev/zero`); None for a file (or anything `stat` cannot tell: its own error says so)."""
    info = _stat_or_none(path)
    return None if info is None else _stream_kind_of(info.st_mode)


def _stat_or_none(path: str) -> Optional[os.stat_result]:
    """`os.stat(path)` (links followed), None where `os.path.exists` is False."""
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _stream_kind_of(mode: int) -> Optional[str]:
    return ("a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else None)


def _broken_link_problem(path: str) -> str:
    """Why a symbolic link leads to no file: its target is missing, or links lead round in a loop (`a.wav ->
    b.wav -> a.wav`), which was reported as a missing `b.wav` although `ls` shows it."""
    target = shown_name(os.readlink(path))
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"symbolic link loop (to {target}, whose links lead round and never reach a file)"
    return f"broken symbolic link (to {target}, which does not exist)"


def _check_header(name: str, value: dict[str, Any]) -> Optional[Mp3Head]:
    """`AudioFileError` for a file that cannot be opened or a truncated WAV (`wav_header`), which decoders misreport
    (as corrupt) or decode in part in silence; for an MP3, the length its header declares (`mp3_header`)."""
    if problem := inspect_wav(value["path"], value["bytes"]):
        raise AudioFileError(name, problem)
    return inspect_mp3(value["path"], value["bytes"])


def _read_with_soundfile(value: dict[str, Any], sampling_rate: int, rates: Optional[list] = None) -> np.ndarray | None:
    """The fast path of `decode_audio`: libsndfile + soxr, for the files libsndfile reads.

    Opening a file with torchcodec costs ~1.5 ms and its WAV path ~9 ms per clip; libsndfile reads a WAV in well under
    1 ms, which is most of the time spent preparing a data set. Without resampling the result is the same: PCM
    identical, stereo mixed as ffmpeg mixes it (`downmix_to_mono`). Resampling is soxr's filter, as in
    `StreamResampler`, not ffmpeg's: the two agree within 1e-5 on content well below the Nyquist frequency (tones) but
    differ by up to ~0.04 of full scale on white noise near it (measured, 8 to 16 kHz). Training and inference both
    decode here, so a model always sees the same filter. More than two channels are averaged (`downmix_to_mono`, as a
    stream's): ffmpeg's layout matrices dropped the 3rd of 3 and the 4th of 6 to 8 channels of a WAV without a channel
    mask (taken for LFE), and have none for 9 or 12. None when libsndfile cannot read the file or finds no samples (an
    OGG cut short, a WAV with a streaming writer's data size 0): ffmpeg then decodes it or names the problem (so too an
    MP3 without a frame count, which `decode_audio` does not send here). Channels that cancel out in the mix are an
    `AudioFileError` (`samples.cancelled_mix_problem`).
    """
    sf = soundfile_module(describe_source(value))
    source = io.BytesIO(value["bytes"]) if value["bytes"] is not None else value["path"]
    try:
        opened = sf.SoundFile(source)
    except Exception:  # not a format libsndfile reads, or a broken file: ffmpeg decides
        return None
    with opened:  # block by block (`mono_read`): a 599-s 8-channel 96 kHz FLAC of 245 KB took 5.5 GB read whole
        return read_mono(opened, opened.frames, sampling_rate, describe_source(value), rates)


DEFAULT_CHUNK_SECONDS = 10


def iter_audio_chunks(path: str | os.PathLike, sampling_rate: int,
                      chunk_seconds: int = DEFAULT_CHUNK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 chunks (about `chunk_seconds` long) of a file of any length, at `sampling_rate`, without
    decoding the whole file: memory stays bounded by the chunk, whatever the file's length.

    Decoded as `decode_audio` decodes: by libsndfile (block by block, same downmix) when it reads the file, else by
    torchcodec + ffmpeg (any format, ffmpeg's downmix for any layout) in consecutive ranges of whole seconds, which give
    the samples of decoding the whole file (wav, flac, ogg, mp3: 0.0 difference). Resampling is streamed with soxr
    (`StreamResampler`), as torchcodec's resampler restarts at each range (a range at 1 s came out 32 samples off).
    libsndfile first also keeps torch out of ONNX inference. Raises `AudioFileError` as `decode_audio` does (a truncated
    MP3 once its end is reached; a file too short to make one sample at `sampling_rate`).
    """
    name = str(path)
    check_audio_path(name)
    chunk_seconds = max(1, int(chunk_seconds))
    mp3 = _check_header(name, {"path": name, "bytes": None})  # as in `decode_audio`
    opened = _open_with_soundfile(name) if mp3 is None or mp3.length else None
    rate, blocks = (opened.samplerate, _soundfile_blocks(opened, name, chunk_seconds)) if opened is not None \
        else ffmpeg_blocks(name, chunk_seconds)
    if problem := rate_problem(rate):
        if opened is not None:
            opened.close()
        raise AudioFileError(name, problem)
    resample = StreamResampler(rate, sampling_rate)
    read = kept = 0  # samples at the file's rate, and at `sampling_rate`
    for samples in blocks:
        if problem := sample_problem(samples, name):
            raise AudioFileError(name, problem)
        chunk = resample(samples)
        read, kept = read + samples.size, kept + chunk.size
        if chunk.size:
            yield chunk
    tail = resample(np.zeros(0, np.float32), last=True)
    if tail.size:
        yield tail
    if kept + tail.size == 0:  # no samples, or under one at `sampling_rate` (5 at 384 kHz): predict scored nothing
        raise AudioFileError(name, no_samples_problem(read, rate, sampling_rate))
    if mp3 is not None and (problem := mp3.problem(read, rate)):
        raise AudioFileError(name, problem)


def _open_with_soundfile(name: str):
    """An open `soundfile.SoundFile` of a file with samples (any channels, averaged as `_read_with_soundfile`
    averages them), else None; no declared length (a piped FLAC: `UNDECLARED_FRAMES`), which soundfile cannot
    read to its end, is left to ffmpeg as in `decode_audio`."""
    sf = soundfile_module(name)
    try:
        opened = sf.SoundFile(name)
    except Exception:  # not a format libsndfile reads, or a broken file: ffmpeg decides
        return None
    if opened.frames == 0 or opened.frames >= UNDECLARED_FRAMES:
        opened.close()
        return None
    return opened


def _soundfile_blocks(opened, name: str, chunk_seconds: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks of `chunk_seconds` at the file's rate, read by libsndfile (`mono_read.sndfile_blocks`)."""
    with opened:
        opened.seek(0)  # as `read_mono` and `soundfile.read` decode an MP3: after a seek (1 ulp otherwise, R5)
        blocks = sndfile_blocks(opened, opened.frames, chunk_seconds * opened.samplerate)
        while True:
            try:
                block = next(blocks, None)
            except Exception as error:  # libsndfile fails mid-file on a truncated or damaged stream
                raise AudioFileError(name, f"cannot be decoded as audio (corrupt): {short_reason(error)}") from error
            if block is None:
                return
            mono = downmix_to_mono(block)
            if problem := cancelled_mix_problem(block, mono):
                raise AudioFileError(name, problem)
            yield mono
