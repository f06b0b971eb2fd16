"""Spotting a WAV file cut short, from its header: libsndfile and ffmpeg both decode one without a word.

Why a module of its own: a WAV file truncated by an interrupted copy or download still opens. libsndfile
(and ffmpeg) return the samples that are there, so a 1-s clip cut to its first 300 bytes decoded as 128
samples (8 ms) and was trained on and classified like any other clip. Only the header says how much audio
there should be, and soundfile does not expose it: `sf.info(...).frames` counts the frames the file holds
(128), and the declared size appears only in libsndfile's free-text log (`extra_info`: "data : 32000
(should be 256)"), not an interface to parse. So the RIFF chunks are walked here (a few reads of 8 bytes
at the start of the file) up to the `data` chunk, whose declared size is compared with the bytes after it.

Accepted as they are: files longer than declared (chunks after the audio, trailing bytes), a shortfall of
up to `MAX_SHORTFALL_BYTES` (a partial last frame), and the sizes streaming writers leave when they cannot
seek back (0, 0x7FFFFFFF, 0xFFFFFFFF: any size from 2 GiB up, which includes RF64/BW64 files; libsndfile
reads no samples from a WAV declaring 0, so `decode_audio` lets ffmpeg read it to the end). A file whose
chunks cannot be followed up to its `data` chunk (cut inside its header, corrupt, not RIFF/WAVE) is not
judged here: the decoders then name the problem. `decode_audio` turns a problem into an `AudioFileError`.
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, NamedTuple, Optional

MAX_SHORTFALL_BYTES = 64  # a partial last frame (up to 8 channels of 64-bit samples) is not a truncation
UNKNOWN_SIZE = 0x7FFFFFFF  # declared sizes from 2 GiB (less a byte) up are placeholders (0x7FFFFFFF, 0xFFFFFFFF)
MAX_CHUNKS = 64  # chunks walked before giving up on finding `data` (real files have a handful)


class WavData(NamedTuple):
    """A RIFF/WAVE file's `data` chunk: the bytes of audio its header declares, and the bytes the file holds
    from the start of the audio to its end."""

    declared: int
    held: int

    @property
    def problem(self) -> Optional[str]:
        """What is wrong, or None (placeholder sizes, files longer than declared and tiny shortfalls pass)."""
        if self.declared == 0 or self.declared >= UNKNOWN_SIZE or self.declared - self.held <= MAX_SHORTFALL_BYTES:
            return None
        return f"truncated WAV: header declares {self.declared} bytes of audio, file holds {self.held}"


def read_data_chunk(f: BinaryIO, file_size: int) -> Optional[WavData]:
    """The `data` chunk of the RIFF/WAVE file open as `f` (`file_size` bytes), or None when the file is not
    RIFF/WAVE or its chunks cannot be followed to a `data` chunk (ids that are not 4 printable characters)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    offset = 12
    for _ in range(MAX_CHUNKS):
        f.seek(offset)
        header = f.read(8)
        if len(header) < 8 or not all(32 <= byte < 127 for byte in header[:4]):
            return None
        size = struct.unpack("<I", header[4:])[0]
        if header[:4] == b"data":
            return WavData(size, file_size - offset - 8)
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


def inspect_wav(path: Optional[str], data: Optional[bytes]) -> Optional[str]:
    """What is wrong with the audio file given by `data` (its bytes) or `path`, as far as its first bytes say:
    a truncated WAV, or a file that cannot be opened (permission denied: otherwise ffmpeg's failure to open it
    read as "corrupt or unsupported format"). None for a sound WAV and for any other format."""
    try:
        if data is not None:
            wav = read_data_chunk(io.BytesIO(data), len(data))
        else:
            with open(path, "rb") as f:
                wav = read_data_chunk(f, os.fstat(f.fileno()).st_size)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    return wav.problem if wav is not None else None
