"""How long an MP3 file says it is, from its Xing/Info or VBRI header: both decoders decode a cut one in silence.

Why a module of its own: an MP3 cut short by an interrupted copy or download still decodes. libsndfile and
ffmpeg return the frames that are there, so a 3-s clip cut to its first third decoded as 0.6 s and was trained
on like any other clip. MP3 has no size field as WAV has (`wav_header`); what it has is the header most
encoders (LAME, ffmpeg) write in the first frame: `Xing` (VBR) or `Info` (CBR), or Fraunhofer's `VBRI`,
with the number of MPEG frames in the file. Here that frame is found (after an ID3v2 tag) and the count read.

A file without such a header has no declared length (some CBR encoders, streams): it is not judged. The
count includes the encoder's delay and padding (about two frames, which decoders drop), so a shortfall of
up to `SLACK_FRAMES` frames is not a truncation.

libsndfile also reads a file without a header wrongly: it estimates the length from the first frame's bitrate
and reads no further, which for a VBR file is a fraction of it (a 1-s clip read as 0.28 s). `decode_audio`
therefore lets ffmpeg decode MP3 files that have no header (`Mp3Head.length` None).
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Optional

SLACK_FRAMES = 3  # encoder delay + padding (LAME: 576 + 529 samples, padding below one frame) + a rounding frame
HEAD_BYTES = 16384  # bytes read where the audio starts (after an ID3v2 tag, which cover art makes 100s of KB)

_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by MPEG version bits


class Mp3Length(NamedTuple):
    """What an MP3 file's first-frame header declares: samples (per channel, delay and padding included), rate."""

    samples: int
    sampling_rate: int
    samples_per_frame: int

    def problem(self, decoded: int) -> Optional[str]:
        """What is wrong when `decoded` samples (at the file's rate) came out, or None."""
        if self.samples - decoded <= SLACK_FRAMES * self.samples_per_frame:
            return None
        return (f"truncated MP3: header declares about {self.samples / self.sampling_rate:.2f} s of audio, "
                f"file holds {decoded / self.sampling_rate:.2f} s")


def read_mp3_length(head: bytes, sync: int) -> Optional[Mp3Length]:
    """The length declared by the frame whose header starts at `sync` in an MP3 file's bytes (`head`, the
    `HEAD_BYTES` where its audio starts; `inspect_mp3` found the frame sync there), or None: a reserved version
    or rate, not Layer III, or no Xing/Info/VBRI header with a frame count."""
    if len(head) < sync + 4:  # the 4-byte frame header is cut
        return None
    b1, b2 = head[sync + 1], head[sync + 2]
    version, layer, rate_index = (b1 >> 3) & 3, (b1 >> 1) & 3, (b2 >> 2) & 3
    if version == 1 or layer != 1 or rate_index == 3:  # reserved version, not Layer III, reserved rate
        return None
    per_frame = 1152 if version == 3 else 576
    frames = _declared_frames(head, sync)
    return Mp3Length(frames * per_frame, _RATES[version][rate_index], per_frame) if frames else None


def _declared_frames(head: bytes, sync: int) -> Optional[int]:
    """The frame count of the Xing/Info (after the side information) or VBRI header of the frame at `sync`."""
    frame = head[sync + 4: sync + 4 + 64]  # side information (9 to 32 bytes), then the tag
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag)
        if at >= 0 and len(frame) >= at + 12 and struct.unpack(">I", frame[at + 4: at + 8])[0] & 1:
            return struct.unpack(">I", frame[at + 8: at + 12])[0]
    vbri = head[sync + 36: sync + 54]
    if vbri[:4] == b"VBRI" and len(vbri) >= 18:
        return struct.unpack(">I", vbri[14:18])[0]
    return None


def _after_id3(head: bytes) -> int:
    """Where the audio starts: after an ID3v2 tag (10-byte header, a synchsafe size, an optional footer)."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


class Mp3Head(NamedTuple):
    """An MP3 file's first bytes: the length they declare, or None when there is no header with a count."""

    length: Optional[Mp3Length]

    def problem(self, decoded: int, sampling_rate: int) -> Optional[str]:
        """A truncation, judged from the `decoded` samples at `sampling_rate` (the file's rate or another)."""
        if self.length is None:
            return None
        return self.length.problem(round(decoded * self.length.sampling_rate / sampling_rate))


def inspect_mp3(path: Optional[str], data: Optional[bytes]) -> Optional[Mp3Head]:
    """What the first bytes of the audio file (`data`, else `path`) declare when it is an MP3 (an MPEG Layer III
    frame, after an ID3v2 tag if any); None for any other format or a file that cannot be read.

    The frame is read where the tag ends, however large: an MP3 with cover art in its tag (often over 100 KB)
    was not judged when only the file's first `HEAD_BYTES` were read, so one cut short decoded in part silently.
    """
    try:
        if data is not None:
            start = _after_id3(data[:10])
            head = data[start: start + HEAD_BYTES]
        else:
            with open(path, "rb") as f:
                start = _after_id3(f.read(10))
                f.seek(start)
                head = f.read(HEAD_BYTES)
    except OSError:
        return None  # `wav_header.inspect_wav` has named the problem already
    if not (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return None  # not a Layer III frame sync where the audio starts
    return Mp3Head(read_mp3_length(head, 0))
