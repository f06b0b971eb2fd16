"""A JSON body sent without its Content-Type (`requests.post(url, data=json.dumps(...))`) is read as JSON: it was
taken for audio bytes and answered "cannot be decoded as audio" (a multi-label audit)."""

from __future__ import annotations

import base64
import json

from hfspeech.serve.payload import parse_request


def test_a_json_body_without_its_content_type_is_read_as_json():
    audio = b"RIFF....WAVEfmt "
    body = json.dumps({"inputs": base64.b64encode(audio).decode(), "parameters": {"top_k": 2}}).encode()
    for content_type in (None, "application/json"):
        got, parameters = parse_request(content_type, b"\n " + body if content_type is None else body, {}, 5)
        assert got == audio and parameters.top_k == 2


def test_raw_audio_without_a_content_type_is_still_audio():
    assert parse_request(None, b"RIFF....WAVE", {}, 5)[0] == b"RIFF....WAVE"
