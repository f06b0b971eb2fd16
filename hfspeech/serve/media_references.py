"""Uploads that are not audio but lists of other files or addresses, refused before any decoder sees them.

An upload libsndfile cannot read is decoded by torchcodec + ffmpeg from memory, and ffmpeg picks the format
by probing the bytes. A few of its formats name other resources, which it then opens with any protocol (an
input read from memory has no protocol whitelist): an ffconcat script (`ffconcat version 1.0` / `file
secret.wav`) made the server read files relative to its working folder and answer their labels (and its
"No such file or directory" told which files exist), a DASH manifest made it send an HTTP GET to any
address the upload named (a request from inside the network: SSRF), an SDP description opened UDP ports on
every interface. ffmpeg's probes for these look at the start of the bytes, or at the text before the first
NUL byte, after an ID3v2 tag (which ffmpeg skips before probing): the same places are looked at here.
"""

from __future__ import annotations

from hfspeech.serve.errors import ApiError

PROBE_BYTES = 5_000_000  # ffmpeg's largest probe (its default probesize)
MAX_ID3_TAGS = 4
# (marker, format) where ffmpeg's probe wants it at the start (concat, hls) or anywhere before a NUL
AT_START = ((b"ffconcat version", "an ffconcat script"), (b"#extm3u", "an M3U/HLS playlist"))
ANYWHERE = ((b"c=in ip", "an SDP stream description"), (b"<mpd", "a DASH manifest"),
            (b"<compositionplaylist", "an IMF composition playlist"))


def refuse_media_references(audio: bytes, name: str = "upload") -> None:
    """400 `undecodable_audio` when ffmpeg would read `audio` as a playlist, script or stream description."""
    for start in _probe_starts(audio):
        end = audio.find(b"\0", start, start + PROBE_BYTES)
        text = audio[start:end if end >= 0 else start + PROBE_BYTES].lower()
        found = [kind for marker, kind in AT_START if text.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(marker)]
        found += [kind for marker, kind in ANYWHERE if marker in text]
        if found:
            raise ApiError(400, "undecodable_audio", f"{name}: {found[0]}, not audio: the server does not "
                           "open the files or addresses an upload names")


def _probe_starts(audio: bytes) -> list[int]:
    """Where ffmpeg may start probing: 0, and past an ID3v2 tag at the start (ffmpeg 5.1 skips one; a few in a
    row are looked past, not thousands: a body of empty tags must not cost a scan each)."""
    starts = [0]
    while len(starts) <= MAX_ID3_TAGS and _is_id3v2(audio, starts[-1]):
        head = audio[starts[-1]:starts[-1] + 10]
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        starts.append(starts[-1] + 10 + size + (10 if head[5] & 0x10 else 0))  # 0x10: a footer follows
    return starts


def _is_id3v2(audio: bytes, at: int) -> bool:
    """ffmpeg's `ff_id3v2_match`: "ID3", a version byte and a revision byte that are not 0xff, a sync-safe size."""
    head = audio[at:at + 10]
    return len(head) == 10 and head[:3] == b"ID3" and head[3] != 0xFF and head[4] != 0xFF and \
        not any(byte & 0x80 for byte in head[6:10])
