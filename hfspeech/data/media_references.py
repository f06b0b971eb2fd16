"""Audio that is not audio but a list of other files or addresses, refused before ffmpeg opens it.

What libsndfile cannot read is decoded by torchcodec + ffmpeg (`audio.decode_audio`, `iter_audio_chunks`, the
server's uploads), and ffmpeg picks the format by probing the bytes. A few of its formats name other
resources, which it then opens: an ffconcat script (`ffconcat version 1.0` / `file secret.wav`) read the
files it named into training, prediction or the server's answer (and ffmpeg's "No such file or directory"
told which files exist); a DASH manifest given as bytes (a Hub data set's `audio` cell, an upload) sent an
HTTP GET to any address it named (a request from inside the network: SSRF); an SDP description opened UDP
ports on every interface. ffmpeg's probes for these look at the start of the bytes, or at the text before the
first NUL byte, after an ID3v2 tag (which ffmpeg skips before probing): the same places are looked at here,
and only those bytes are read from a file (real audio has a NUL within its first bytes).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

PROBE_BYTES = 5_000_000  # ffmpeg's largest probe (its default probesize)
FIRST_READ = 65_536  # a file is read this far first; past it only when no NUL came (text, not audio)
MAX_ID3_TAGS = 4
# (marker, format) where ffmpeg's probe wants it at the start (concat, hls) or anywhere before a NUL
AT_START = ((b"ffconcat version", "an ffconcat script"), (b"#extm3u", "an M3U/HLS playlist"))
ANYWHERE = ((b"c=in ip", "an SDP stream description"), (b"<mpd", "a DASH manifest"),
            (b"<compositionplaylist", "an IMF composition playlist"))
Reader = Callable[[int, int], bytes]  # (offset, size) -> the bytes there


def refuse_media_references(source: bytes | str | os.PathLike, name: str) -> None:
    """`AudioFileError` naming `name` when ffmpeg would read `source` (bytes, or a file's path) as a playlist,
    script or stream description; called on every way into ffmpeg, never on libsndfile's."""
    if kind := media_reference_kind(source):
        from hfspeech.data.audio import AudioFileError  # audio.py imports this module

        raise AudioFileError(name, f"{kind}, not audio: hfspeech does not open the files or addresses an audio "
                             "file names")


def file_for_ffmpeg(path: str | os.PathLike) -> str:
    """`path` as ffmpeg must be given it to read that file: absolute, as ffmpeg takes a name before its first
    `/` for a protocol (a file named `concat:secret.wav` or `subfile,,start,0,end,0,,:secret.wav` decoded
    `secret.wav` instead of itself)."""
    return os.path.abspath(path)


def media_reference_kind(source: bytes | str | os.PathLike) -> Optional[str]:
    """What ffmpeg would take `source` for ("an ffconcat script", "a DASH manifest" ...), or None for anything
    else; a file that cannot be opened is None too (ffmpeg then names the problem)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _kind_in(lambda at, size: bytes(source[at:at + size]))
    try:
        with open(source, "rb") as file:
            def read(at: int, size: int) -> bytes:
                file.seek(at)
                return file.read(size)

            return _kind_in(read)
    except OSError:
        return None


def _kind_in(read: Reader) -> Optional[str]:
    for start in _probe_starts(read):
        text = _probed_text(read, start).lower().lstrip(b"\xef\xbb\xbf \t\r\n")
        found = [kind for marker, kind in AT_START if text.startswith(marker)]
        found += [kind for marker, kind in ANYWHERE if marker in text]
        if found:
            return found[0]
    return None


def _probed_text(read: Reader, start: int) -> bytes:
    """The bytes from `start` to the first NUL, at most `PROBE_BYTES`, read in at most two steps."""
    text = read(start, FIRST_READ)
    if b"\0" not in text and len(text) == FIRST_READ:
        text += read(start + FIRST_READ, PROBE_BYTES - FIRST_READ)
    end = text.find(b"\0")
    return text[:end] if end >= 0 else text


def _probe_starts(read: Reader) -> list[int]:
    """Where ffmpeg may start probing: 0, and past an ID3v2 tag at the start (ffmpeg 5.1 skips one; a few in a
    row are looked past, not thousands: a body of empty tags must not cost a scan each)."""
    starts = [0]
    while len(starts) <= MAX_ID3_TAGS and _is_id3v2(head := read(starts[-1], 10)):
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        starts.append(starts[-1] + 10 + size + (10 if head[5] & 0x10 else 0))  # 0x10: a footer follows
    return starts


def _is_id3v2(head: bytes) -> bool:
    """ffmpeg's `ff_id3v2_match`: "ID3", a version byte and a revision byte that are not 0xff, a sync-safe size."""
    return len(head) == 10 and head[:3] == b"ID3" and head[3] != 0xFF and head[4] != 0xFF and \
        not any(byte & 0x80 for byte in head[6:10])
