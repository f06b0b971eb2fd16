"""uvicorn's HTTP/1.1 protocol with a deadline on a request's headers.

uvicorn (0.54) times a connection out only between requests (its keep-alive timeout, once an answer has been
sent): a client that connects and sends nothing, or sends a request line and then a header byte every few
seconds ("slow loris"), held its connection for ever (measured: still open after 45 s with
`--request_timeout 30`), and enough of them use up the server's file descriptors. Here a connection that has
not sent a whole request's headers `--request_timeout` seconds after it opened (or after it began the next
request) is closed: with a 408 `{"error", "kind": "timeout"}` when it had sent part of them, silently when it
had sent nothing (as the keep-alive timeout closes an idle connection). The body is bounded elsewhere: the
route reads it within the same timeout (`app.Endpoints.within_timeout`).

The timeout reaches `--workers N` processes in an environment variable, as the settings do; a one-process
server's protocol class carries its own (`with_header_timeout`), so two servers of one Python process (a notebook)
do not share, and put back, one variable.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_ENV = "HFSPEECH_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 30.0
PROTOCOL = "hfspeech.serve.connections:HeaderTimeoutProtocol"  # uvicorn's `http=`, importable by each worker


class HeaderTimeoutProtocol(H11Protocol):
    """`H11Protocol`, plus a timer that runs while a request's headers are awaited and closes the connection
    if they are not all there when it fires. It is not reset by bytes that arrive: a total, not an idle time."""

    own_timeout: Optional[float] = None  # a one-process server's (`with_header_timeout`); workers read the variable

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = float(self.own_timeout if self.own_timeout is not None else
                                    os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT)
        self.header_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        """No request is being read or answered, and the next one's headers are not all in."""
        answering = self.cycle is not None and not self.cycle.response_complete
        return self.conn.their_state is h11.IDLE and not answering and not self.transport.is_closing()

    def _watch_headers(self) -> None:
        if not self._awaiting_headers():
            self._stop_watching()
        elif self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_watching(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self._awaiting_headers():
            return
        if self.conn.trailing_data[0]:  # part of a request came: say why it ends
            body = json.dumps({"error": f"request headers did not all arrive within {self.header_timeout:g} s",
                               "kind": "timeout"}).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"x-error-kind: timeout\r\nconnection: close\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def with_header_timeout(seconds: float) -> type:
    """The protocol class (uvicorn's `http=`) of one in-process server, its header deadline its own."""
    return type(HeaderTimeoutProtocol.__name__, (HeaderTimeoutProtocol,), {"own_timeout": float(seconds)})
