"""What a classification request carries, read within the server's limits.

The Hub's task contract (`huggingface_hub` 0.36, `HFInferenceBinaryInputTask`): without parameters a
client POSTs the raw audio bytes (Content-Type from the file name, or none); with parameters it POSTs JSON
`{"inputs": "<base64 audio>", "parameters": {"top_k": k, "function_to_apply": "softmax"}}`. Query
parameters (`?top_k=3&timeline=true`) are read too, for curl and the web page; the JSON's win. An unknown
parameter or a value that does not fit is a 400 naming it, never read as the default.

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
PARAMETER_NAMES = ("top_k", "function_to_apply", "timeline", "aggregate")
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


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
    if media == "application/json" or (not media and body[:64].lstrip()[:1] == b"{"):  # no audio format starts `{`:
        # a JSON body sent without its Content-Type (Python `requests.post(url, data=...)`) was "not audio"
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
    parameters = document.get("parameters")
    parameters = {} if parameters is None else parameters  # `[]` or `0` used to pass as "no parameters"
    if not isinstance(parameters, dict):
        raise ApiError(400, "bad_parameters", "`parameters` must be a JSON object")
    try:  # line breaks are allowed: `base64 clip.wav` and Python's `encodebytes` wrap at 76 characters
        audio = base64.b64decode("".join(document["inputs"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", "`inputs` is not valid base64") from None
    return audio, parameters


def refuse_unknown(values, known) -> None:
    """400 naming the parameters a route does not know, and the ones it does."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ApiError(400, "bad_parameters", f"unknown parameter{'s' * (len(unknown) > 1)} "
                       f"{', '.join(map(repr, unknown))}: the known ones are {', '.join(known)}")


def parse_parameters(values: dict, default_top_k: int) -> Parameters:
    """Parameters from the query string or JSON (strings or JSON values), checked. A name the server does not
    know is refused rather than ignored: `?topk=3` used to answer the default five labels without a word."""
    refuse_unknown(values, PARAMETER_NAMES)
    function = values.get("function_to_apply")
    if function is not None and function not in FUNCTIONS:
        raise ApiError(400, "bad_parameters", f"function_to_apply must be one of {FUNCTIONS}, got {_shown(function)}")
    aggregate = values.get("aggregate")
    aggregate = "mean" if aggregate in (None, "") else aggregate
    if aggregate not in AGGREGATIONS:
        raise ApiError(400, "bad_parameters", f"aggregate must be one of {AGGREGATIONS}, got {_shown(aggregate)}")
    return Parameters(_top_k(values.get("top_k"), default_top_k), function, flag_parameter(values, "timeline"),
                      aggregate)


def _top_k(value, default: int) -> int:
    """A whole number of at least 1 (a JSON 2.0 too). JSON `0`, `true` or `2.7` used to become the default, 1
    and 2, and `1e400` a 500; absent, null or an empty query value: the server's default."""
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, "bad_parameters", f"top_k must be a whole number, got {_shown(value)}")
    if value < 1:
        raise ApiError(400, "bad_parameters", f"top_k must be at least 1, got {value}")
    return value


def flag_parameter(values: dict, name: str) -> bool:
    """true/false (JSON), or 1/0, true/false, yes/no (query); `?timeline=ture` used to mean false (and
    `/stream?windows=maybe` no windows)."""
    value = values.get(name, False)
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in TRUE_WORDS + FALSE_WORDS:
        return value if isinstance(value, bool) else text in TRUE_WORDS
    raise ApiError(400, "bad_parameters", f"{name} must be true or false, got {_shown(value)}")


def _shown(value) -> str:
    """A parameter's value as the client wrote it: 'abc' from a query string, JSON's true or [1] from a body."""
    return repr(value) if isinstance(value, str) else json.dumps(value)
