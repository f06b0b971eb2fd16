"""Uploads that are not audio but lists of other files or addresses, refused before any decoder sees them.

An upload libsndfile cannot read is decoded by torchcodec + ffmpeg from memory, and ffmpeg would open the
files or addresses an ffconcat script, an M3U/HLS playlist, a DASH manifest, an SDP description or an IMF
playlist names (files beside the server, any HTTP address: SSRF, UDP ports). What counts as one is
`data.media_references` (which `decode_audio` applies to every file it hands to ffmpeg); this is only its
answer to a client, given before any of the server's decoders (`upload_audio`, `audio_length`) opens the upload.
"""

from __future__ import annotations

from hfspeech.data.media_references import media_reference_kind
from hfspeech.serve.errors import ApiError


def refuse_media_references(audio: bytes, name: str = "upload") -> None:
    """400 `undecodable_audio` when ffmpeg would read `audio` as a playlist, script or stream description."""
    if kind := media_reference_kind(audio):
        raise ApiError(400, "undecodable_audio", f"{name}: {kind}, not audio: the server does not open the files "
                       "or addresses an upload names")
