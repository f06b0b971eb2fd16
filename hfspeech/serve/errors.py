"""One shape for every error the server answers: `{"error": "<one line>", "kind": "<machine name>"}`.

`{"error": ...}` is what the Hub's Inference API answers and what `huggingface_hub` reads into its
`HfHubHTTPError` message. Messages are written here, never taken from a traceback; anything from a library
(a decoder's reason) is scrubbed of file system paths before it leaves the process, so a server error
never tells a client where the model or the temporary files live.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse

from hfspeech.data.audio import AudioFileError
from hfspeech.errors import HfspeechError

# Absolute paths (/x/y, C:\x) inside a library's message: replaced by "<path>".
ERROR_KIND_HEADER = "X-Error-Kind"
PATH_PATTERN = re.compile(r"(?:[A-Za-z]:\\|/)(?:[\w.\-+@]+[/\\])+[\w.\-+@]*")


class ApiError(HfspeechError):
    """A request the server refuses or cannot complete: HTTP status, a kind for metrics, a one-line message.
    An `HfspeechError` (its message is one line, written here) that the server answers instead of printing."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, scrub(message)


def scrub(message: str) -> str:
    """One line, without file system paths."""
    line = (str(message).strip().splitlines() or [""])[0]
    return PATH_PATTERN.sub("<path>", line)[:500]


def error_response(error: ApiError) -> JSONResponse:
    """The JSON answer; its X-Error-Kind header is what the metrics middleware counts errors by. After a
    timeout or a body refused before it was read, the connection is closed: what is left of the body would
    otherwise be read as the next request."""
    headers = {ERROR_KIND_HEADER: error.kind}
    if error.status in (408, 413):
        headers["Connection"] = "close"
    if error.status == 503:  # loading, or busy: a client's retry logic waits this long
        headers["Retry-After"] = "1"
    return JSONResponse({"error": error.message, "kind": error.kind}, status_code=error.status, headers=headers)


async def send_error(scope, receive, send, error: ApiError) -> None:
    """`error` answered on an HTTP request as the JSON above, or a WebSocket's handshake closed with policy
    violation (1008) and the message's start as its reason (a handshake cannot carry a JSON body)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})
        return
    await error_response(error)(scope, receive, send)


# AudioFileError's problem text -> the error kind a client (and /metrics) sees.
AUDIO_PROBLEM_KINDS = (("empty", "empty_audio"), ("zero length", "empty_audio"), ("NaN", "non_finite_audio"),
                       ("cannot be decoded", "undecodable_audio"), ("truncated", "undecodable_audio"),
                       ("not audio", "undecodable_audio"))  # a playlist or script (`data.media_references`)


def audio_error(error: AudioFileError, name: str = "upload") -> ApiError:
    """A decoding failure of an upload, named as `hfspeech predict` names a bad file."""
    kind = next((kind for marker, kind in AUDIO_PROBLEM_KINDS if marker in error.problem), "bad_audio")
    return ApiError(400, kind, f"{name}: {error.problem}")
