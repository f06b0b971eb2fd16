"""The server's access log writes at most `REQUEST_PART_LIMIT` characters of a request's path (audit SV: an 8 KB
made-up path cost 8,130 bytes of log per request, so a client could grow the log at will).
The real server's log is checked on test_serve_live.py's servers (one process and `--workers 2`) with the two helpers
at the end of this file: starting servers of its own cost this file 25 s."""

from __future__ import annotations

import logging

import httpx

LONG_PATH = "/" + "a" * 8000  # a 404: no such route


def access_line(filtered: bool, path: str) -> str:
    """The line uvicorn's access log writes for `GET path` (its own formatter and format), through the filter."""
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.logging import AccessFormatter

    from hfspeech.serve.log_redaction import RedactApiKey

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:50000", "GET", path, "1.1", 404), None)
    if filtered:
        RedactApiKey().filter(record)
    return AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"], use_colors=False).format(record)


def test_a_long_path_is_cut_in_the_access_log_which_keeps_its_format():
    assert access_line(True, LONG_PATH) == ('INFO:     127.0.0.1:50000 - "GET /' + "a" * 199 + '...(8001 chars) '
                                            'HTTP/1.1" 404 Not Found')
    assert access_line(True, "/predict?x=1") == access_line(False, "/predict?x=1")  # short lines as they were


def test_an_api_key_at_the_cut_is_redacted_before_it_and_leaves_no_part_of_itself():
    key = "hfspeech-test-key-0123456789"
    line = access_line(True, "/stream" + "b" * 180 + f"?api_key={key}&" + "c" * 300)
    assert "?api_key=<red...(507 chars)" in line and "hfsp" not in line, line  # cut first, "hfsp" was left
    assert line.isascii()  # uvicorn's stream may be ASCII (LC_ALL=C): a `…` was a logging traceback a request (R3)


def test_an_api_key_spelled_with_an_escaped_underscore_is_redacted_too():
    """`?api%5Fkey=KEY` authenticates (the name is decoded) and was logged in clear (R3)."""
    assert "SECRETKEY" not in access_line(True, "/stream?api%5Fkey=SECRETKEY123")


def request_long_paths(url: str) -> None:
    """Four requests for a made-up 8 KB path (with workers: each worker is likely to answer one)."""
    for query in range(4):
        assert httpx.get(f"{url}{LONG_PATH}?{query}", timeout=60).status_code == 404


def assert_long_paths_logged_cut(log: str) -> None:
    """The real server's log (`--log_level info`) after `request_long_paths`: each of the four lines cut.
    test_serve_live.py runs both on the servers it starts anyway, one process and `--workers 2`."""
    lines = [line for line in log.splitlines() if '"GET /aaa' in line]
    cut = all("a" * 201 not in line and '(8003 chars) HTTP/1.1" 404' in line for line in lines)
    assert len(lines) == 4 and cut, log
    assert max(map(len, lines)) < 300
