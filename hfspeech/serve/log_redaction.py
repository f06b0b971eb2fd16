"""Keep the API key out of the server's log, and a client's made-up long path from growing it at will.

A browser cannot set headers on a WebSocket, so `/stream` also takes the key as `?api_key=`; uvicorn logs
every request line with its query string (`"WebSocket /stream?api_key=..." [accepted]` at the default
`--log_level info`), so the key landed in the log, and in whatever collects logs, in clear. A filter on
uvicorn's loggers replaces the value with `<redacted>` before any handler sees the line.

The same request line holds the whole path and query: an 8 KB made-up path (a 404) cost 8,130 bytes of log per
request (audit SV), so any client could fill the disk the log is on. The filter cuts what it writes of a path, a
query or a method to `REQUEST_PART_LIMIT` characters, then `...` and the whole length (`/aaaa...(8001 chars)`); the
line keeps its format otherwise. It is installed by `serve.app.create_app`, in each `--workers` process too.
"""

from __future__ import annotations

import logging
import re

API_KEY_IN_QUERY = re.compile(r"(\bapi(?:_|%5f)key=)[^&\s\"']*", re.IGNORECASE)  # `api%5Fkey` authenticates too
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")
REQUEST_PART_LIMIT = 200  # characters of a path with its query (or of a method) written to the log
WEBSOCKET_LINE = '"WebSocket %s"'  # uvicorn.error's request lines of a WebSocket (its access log is HTTP's)


def without_api_key(text: str) -> str:
    return API_KEY_IN_QUERY.sub(r"\1<redacted>", text)


def shortened(text: str) -> str:
    """`text` as the log writes it: cut to `REQUEST_PART_LIMIT` characters, then `...(N chars)`, where longer."""
    if len(text) <= REQUEST_PART_LIMIT:
        return text
    return f"{text[:REQUEST_PART_LIMIT]}...({len(text)} chars)"  # ASCII: uvicorn's stream may be (LC_ALL=C, R3)


class RedactApiKey(logging.Filter):
    """Rewrites a record's message and arguments without the value of an `api_key` query parameter, and, in a
    request line (uvicorn's access log, a WebSocket's line), with each long argument shortened: after the key is
    redacted, so no part of a key is left at the cut."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = without_api_key(record.msg)
        if isinstance(record.args, tuple):
            request_line = record.name == "uvicorn.access" or (isinstance(record.msg, str)
                                                               and WEBSOCKET_LINE in record.msg)
            record.args = tuple(self._argument(arg, request_line) for arg in record.args)
        return True

    @staticmethod
    def _argument(arg, request_line: bool):
        if not isinstance(arg, str):
            return arg
        arg = without_api_key(arg)
        return shortened(arg) if request_line else arg


def redact_api_keys_in_logs() -> None:
    """Install the filter on uvicorn's loggers, once (each worker process calls it)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactApiKey) for existing in logger.filters):
            logger.addFilter(RedactApiKey())
