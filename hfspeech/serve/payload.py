"""What a classification request carries, read within the server's limits.

The Hub's task contract (`huggingface_hub` 0.36, `HFInferenceBinaryInputTask`): without parameters a
client POSTs the raw audio bytes (Content-Type from the file name, or none); with parameters it POSTs JSON
`{"inputs": "<base64 audio>", "parameters": {"top_k": k, "function_to_apply": "softmax"}}`. Query
parameters (`?top_k=3&timeline=true`) are read too, for curl and the web page; the JSON's win.

The body is read as it arrives and refused (413) as soon as it passes the limit, before it is all in
memory; a body that stops arriving (a truncated upload) ends at the request timeout.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import AsyncIterator, Optional

from starlette.requests import ClientDisconnect, Request

from hfspeech.inference.classifier import AGGREGATIONS
from hfspeech.serve.errors import ApiError

FUNCTIONS = ("softmax", "sigmoid", "none")  # the transformers pipeline's function_to_apply
# Audio arrives as audio/* (wav, flac, mpeg, ogg, webm from a browser's MediaRecorder), video/* (a container
# holding audio), octet-stream, or without a type; JSON holds base64 audio. x-www-form-urlencoded is what
# `curl --data-binary @clip.wav` sends unless told otherwise (the Hub's own curl examples set no type).
RAW_TYPES = ("audio/", "video/", "application/octet-stream", "application/x-www-form-urlencoded")


@dataclass
class Parameters:
    top_k: int = 5
    function_to_apply: Optional[str] = None  # None: the model's own (softmax, or sigmoid for multi-label)
    timeline: bool = False
    aggregate: str = "mean"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 once it passes `max_bytes` (checked against Content-Length first)."""
    return b"".join([chunk async for chunk in iter_body(request, max_bytes)])


async def iter_body(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, 413 once they pass `max_bytes`, 400 if the client leaves halfway."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"body of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, "body_too_large", f"body is over the limit of {max_bytes} bytes")
            yield chunk
    except ClientDisconnect:
        raise ApiError(400, "truncated_upload", "upload truncated: the client closed the connection "
                       "before the whole body arrived") from None


def parse_request(content_type: Optional[str], body: bytes, query: dict, default_top_k: int) -> tuple[bytes, Parameters]:
    """(audio bytes, parameters) of a request, or 415 / 400 naming what is wrong."""
    media = (content_type or "").split(";")[0].strip().lower()
    parameters: dict = dict(query)
    if media == "application/json":
        audio, from_json = _json_inputs(body)
        parameters.update(from_json)
    elif not media or media.startswith(RAW_TYPES):
        audio = body
    else:
        raise ApiError(415, "unsupported_content_type", f"unsupported content type {media!r}: send the audio "
                       "bytes (audio/*, application/octet-stream) or JSON with base64 `inputs`")
    return audio, parse_parameters(parameters, default_top_k)


def _json_inputs(body: bytes) -> tuple[bytes, dict]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "bad_json", f"body is not valid JSON ({error.__class__.__name__})") from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), str):
        raise ApiError(400, "bad_json", "JSON body needs `inputs`: the audio file's bytes in base64")
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(400, "bad_parameters", "`parameters` must be a JSON object")
    try:
        audio = base64.b64decode(document["inputs"], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", "`inputs` is not valid base64") from None
    return audio, parameters


def parse_parameters(values: dict, default_top_k: int) -> Parameters:
    """Parameters from the query string or JSON (strings or JSON values), checked."""
    try:
        top_k = int(values.get("top_k") or default_top_k)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_parameters", f"top_k must be an integer, got {values.get('top_k')!r}") from None
    if top_k < 1:
        raise ApiError(400, "bad_parameters", f"top_k must be at least 1, got {top_k}")
    function = values.get("function_to_apply")
    if function is not None and function not in FUNCTIONS:
        raise ApiError(400, "bad_parameters", f"function_to_apply must be one of {FUNCTIONS}, got {function!r}")
    aggregate = values.get("aggregate") or "mean"
    if aggregate not in AGGREGATIONS:
        raise ApiError(400, "bad_parameters", f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
    timeline = str(values.get("timeline", "false")).lower() in ("1", "true", "yes")
    return Parameters(top_k, function, timeline, aggregate)
