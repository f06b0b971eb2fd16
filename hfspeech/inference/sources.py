"""Where a live stream's audio comes from: raw PCM bytes on a pipe, or a file that is still being written.

Both yield float32 sample chunks `[n, channels]` for `StreamingClassifier.feed`. Bytes arrive in pieces that
need not end on a sample boundary, so a partial frame is kept until the rest arrives. A followed file may be
raw PCM or a WAV being recorded (its header, whose sizes a recorder fills in only at the end, is read for the
format, rate and channels; the sizes are ignored). stdin, a followed file and the server's `/stream` tell a WAV
from raw PCM by one rule, `live_format` (`wav_or_raw`, after 8 bytes, refusing encoded audio).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional

import numpy as np

from hfspeech.data.audio import AUDIO_EXTENSIONS
from hfspeech.inference.waveforms import MAX_CHANNELS

PCM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
READ_BYTES = 1 << 15
logger = logging.getLogger(__name__)
MAX_RATE = 768_000  # the fastest audio interfaces sold


@dataclass
class PcmFormat:
    sample_format: str  # s16le or f32le
    rate: int
    channels: int

    def __post_init__(self):
        if self.sample_format not in PCM_FORMATS:
            raise ValueError(f"format must be one of {sorted(PCM_FORMATS)}, got {self.sample_format!r}")
        if self.rate < 1 or self.channels < 1:
            raise ValueError(f"rate and channels must be positive, got rate={self.rate}, channels={self.channels}")
        # Checked here, before any audio: past MAX_RATE the resampler returned no samples at all (a silent,
        # empty stream), and past MAX_CHANNELS the first chunk failed as "channels-first array".
        if self.rate > MAX_RATE or self.channels > MAX_CHANNELS:
            raise ValueError(f"rate must be at most {MAX_RATE} and channels at most {MAX_CHANNELS}, "
                             f"got rate={self.rate}, channels={self.channels}")

    @property
    def frame_bytes(self) -> int:
        return PCM_FORMATS[self.sample_format].itemsize * self.channels


class PcmDecoder:
    """Bytes -> float32 `[frames, channels]`; keeps a partial frame for the next call."""

    def __init__(self, pcm: PcmFormat):
        self.pcm = pcm
        self.pending = b""

    def __call__(self, data: bytes) -> np.ndarray:
        data = self.pending + data
        usable = len(data) - len(data) % self.pcm.frame_bytes
        self.pending = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=PCM_FORMATS[self.pcm.sample_format])
        if self.pcm.sample_format == "s16le":
            samples = samples.astype(np.float32) / 32768.0
        return samples.astype(np.float32, copy=False).reshape(-1, self.pcm.channels)

    def warn_partial(self, source: str) -> None:
        """At the end of the stream: bytes short of a whole frame were dropped without a word before, yet
        they are often the sign of a wrong --format or --channels."""
        if self.pending:
            logger.warning("warning: %s ended with %d bytes, less than a frame of %d (%s, %d channels): ignored",
                           source, len(self.pending), self.pcm.frame_bytes, self.pcm.sample_format, self.pcm.channels)


def read_pcm(stream: BinaryIO, pcm: PcmFormat, read_bytes: int = READ_BYTES, head: bytes = b"") -> Iterator[np.ndarray]:
    """Chunks of a raw PCM pipe (e.g. stdin) as they arrive, until end of file; `head`: its first bytes,
    already read (`stdin_format`)."""
    decode = PcmDecoder(pcm)
    read = getattr(stream, "read1", stream.read)  # read1: whatever has arrived, without waiting for a full block
    data = head
    while True:
        data = data or read(read_bytes)
        if not data:
            decode.warn_partial("stdin")
            return
        chunk = decode(data)
        data = b""
        if len(chunk):
            yield chunk


def stdin_format(stream: BinaryIO, pcm: PcmFormat, read_bytes: int = READ_BYTES) -> tuple[PcmFormat, bytes]:
    """(format, the bytes read past the header) of a pipe: the WAV header's when it starts with RIFF, else
    `pcm` and all it read. `cat take.wav | hfspeech stream` used to read the header as samples and the
    file at --rate (the model's by default): an 8 kHz WAV ran at twice its speed, every time halved."""
    read = getattr(stream, "read1", stream.read)
    head = b""
    while True:
        more = read(read_bytes)
        head += more
        found = live_format(head, "stdin", not more, "is {kind} audio, not raw PCM or WAV; classify a finished "
                            "file with `hfspeech predict`, or decode it into the pipe (ffmpeg ... -f wav -)")
        if found is not None:
            header, offset = found
            return header or pcm, head[offset:]


def live_format(head: bytes, source: str, ended: bool, refusal: str) -> Optional[tuple[Optional[PcmFormat], int]]:
    """`wav_or_raw` of a live source's first bytes (stdin, a followed file, `POST /stream`) once 8 have come or
    no more will (`ended`): 8 let `encoded_format` see MP4's `ftyp`. A source that opens as an encoded format
    is a ValueError, `"{source}: "` and `refusal` (given `kind`): read as PCM, FLAC or MP3 bytes were noise
    firing events."""
    if len(head) < 8 and not ended:
        return None
    kind = encoded_format(head)
    if kind:
        raise ValueError(f"{source}: " + refusal.format(kind=kind))
    return wav_or_raw(head, source, ended)


def wav_or_raw(head: bytes, source: str, ended: bool = False) -> Optional[tuple[Optional[PcmFormat], int]]:
    """What the first bytes of a live stream (stdin, a followed file, `POST /stream`) are: `(format, offset
    of the first sample)` of a WAV header, `(None, 0)` for raw PCM (anything not starting with RIFF), or
    None while they cannot tell yet (fewer than 4 bytes, a WAV header not yet whole). `ended`: no more bytes
    will come, so a WAV header cut short is a ValueError, as is a WAV whose samples cannot be streamed."""
    if len(head) < 4 and not ended:
        return None
    if head[:4] != b"RIFF":
        return None, 0
    header = parse_wav_header(head, source)
    if header is None and ended:
        raise ValueError(f"{source}: the WAV header ended before its samples")
    return header


def parse_wav_header(head: bytes, path: str) -> Optional[tuple[PcmFormat, int]]:
    """(format, offset of the samples) of a WAV header, None while the header is incomplete."""
    if len(head) < 12:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    offset, pcm = 12, None
    while offset + 8 <= len(head):
        chunk_id, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
        if chunk_id == b"data":
            return (pcm, offset + 8) if pcm else None
        if chunk_id == b"fmt ":
            if offset + 8 + 16 > len(head):
                return None
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", head[offset + 8 : offset + 24])
            if tag == 0xFFFE and offset + 8 + 26 <= len(head):  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                tag = struct.unpack("<H", head[offset + 32 : offset + 34])[0]
            kinds = {(1, 16): "s16le", (3, 32): "f32le"}
            if (tag, bits) not in kinds:
                raise ValueError(f"{path}: WAV with format tag {tag} and {bits} bits per sample; "
                                 "only 16-bit PCM and 32-bit float can be streamed")
            pcm = PcmFormat(kinds[(tag, bits)], rate, channels)
        offset += 8 + size + size % 2
    return None


def followed_format(path: str, pcm: PcmFormat, idle_timeout: float = 5.0,
                    poll_seconds: float = 0.1) -> tuple[PcmFormat, int]:
    """(format, offset of the first sample) of a file to follow: its WAV header's when it starts with RIFF
    (waiting up to `idle_timeout` s for the header to be written), else `pcm` and 0 (raw PCM)."""
    deadline = time.monotonic() + idle_timeout
    head = b""
    with open(path, "rb") as f:
        while True:
            more = f.read(READ_BYTES)
            head += more
            idle = not more and time.monotonic() >= deadline  # the file may still grow: only then is it `ended`
            if idle and (head[:4] == b"RIFF" or 0 < len(head) < 4):
                raise ValueError(f"{path}: WAV header incomplete after {idle_timeout} s")
            found = live_format(head, path, idle, FOLLOW_REFUSAL)
            if found is not None:
                if found[0] is None and head:  # raw PCM (still empty: raw PCM that has not started yet)
                    _refuse_audio_extension(path)
                return found if found[0] is not None else (pcm, 0)
            if more:
                deadline = time.monotonic() + idle_timeout
            else:
                time.sleep(poll_seconds)


# How files that are not raw PCM begin: a followed one was read as s16le samples, and its compressed bytes
# were classified as noise (label events and all) without a word.
ENCODED_MAGIC = {b"fLaC": "FLAC", b"OggS": "Ogg", b"ID3": "MP3", b"FORM": "AIFF", b"caff": "CAF",
                 b"\x1aE\xdf\xa3": "WebM/Matroska", b"RF64": "RF64 WAV", b"riff": "Wave64"}


def encoded_format(head: bytes) -> Optional[str]:
    """The encoded or container format a stream's first bytes open (MP4/M4A: `ftyp` at byte 4), or None."""
    kind = next((name for magic, name in ENCODED_MAGIC.items() if head.startswith(magic)), None)
    return "MP4/M4A" if kind is None and head[4:8] == b"ftyp" else kind


FOLLOW_REFUSAL = ("is {kind} audio, not raw PCM or WAV (what --follow reads as it is recorded); classify a finished "
                  "file with `hfspeech predict`")


def _refuse_audio_extension(path: str) -> None:
    """A ValueError for a file whose bytes are not an encoded format's (`live_format` looked) but whose
    extension names one; raw PCM files are named .raw, .pcm ... or nothing."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in AUDIO_EXTENSIONS and suffix != ".wav":
        raise ValueError(f"{path}: " + FOLLOW_REFUSAL.format(kind=suffix[1:].upper()))


def follow_file(path: str, pcm: PcmFormat, offset: int = 0, idle_timeout: float = 5.0, poll_seconds: float = 0.1,
                read_bytes: int = READ_BYTES) -> Iterator[np.ndarray]:
    """Chunks of a growing file from `offset` on, as they are appended; stops once nothing new came for
    `idle_timeout` seconds (`followed_format` gives `pcm` and `offset` for a WAV being recorded)."""
    decode = PcmDecoder(pcm)
    deadline = time.monotonic() + idle_timeout
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            data = f.read(read_bytes)
            if data:
                deadline = time.monotonic() + idle_timeout
                chunk = decode(data)
                if len(chunk):
                    yield chunk
            elif time.monotonic() >= deadline:
                decode.warn_partial(path)
                return
            elif _replaced(f, path):
                logger.warning("warning: %s was truncated or replaced while followed: the stream ends at byte %d "
                               "of it (start a new `hfspeech stream` for the new file)", path, f.tell())
                return
            else:
                time.sleep(poll_seconds)


def _replaced(f: BinaryIO, path: str) -> bool:
    """Whether the followed file shrank below what was read (truncated) or `path` names another file now
    (rotated). Either used to go unnoticed: reading on from the old position stitched the new recording's
    tail onto the old one, or waited out `idle_timeout` on a file nobody writes, without a word."""
    opened = os.fstat(f.fileno())
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return True
    return opened.st_size < f.tell() or (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev)
