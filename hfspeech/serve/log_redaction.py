"""Keep the API key out of the server's log.

A browser cannot set headers on a WebSocket, so `/stream` also takes the key as `?api_key=`; uvicorn logs
every request line with its query string (`"WebSocket /stream?api_key=..." [accepted]` at the default
`--log_level info`), so the key landed in the log, and in whatever collects logs, in clear. A filter on
uvicorn's loggers replaces the value with `<redacted>` before any handler sees the line.
"""

from __future__ import annotations

import logging
import re

API_KEY_IN_QUERY = re.compile(r"(\bapi_key=)[^&\s\"']*", re.IGNORECASE)
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")


class RedactApiKey(logging.Filter):
    """Rewrites a record's message and arguments without the value of an `api_key` query parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = API_KEY_IN_QUERY.sub(r"\1<redacted>", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(API_KEY_IN_QUERY.sub(r"\1<redacted>", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


def redact_api_keys_in_logs() -> None:
    """Install the filter on uvicorn's loggers, once (each worker process calls it)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactApiKey) for existing in logger.filters):
            logger.addFilter(RedactApiKey())
