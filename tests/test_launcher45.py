"""`ServerProcess` (benchmarks' and the tests' real server) asked `/health` of a server still loading whose 503 body
did not arrive within the read timeout: the `TimeoutError` escaped `__enter__` without `stop()`, and a `--workers 2`
server and its workers stayed behind (seen on a loaded machine, helper B)."""

from __future__ import annotations

import http.server
import threading
import time

from hfspeech.serve.launcher import health_status


class StallingHandler(http.server.BaseHTTPRequestHandler):
    """A 503 whose declared body never comes within the client's 2-s timeout."""

    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.flush()
        time.sleep(3)

    def log_message(self, *args):
        pass


def test_a_503_whose_body_stalls_is_still_starting_not_an_error():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert health_status(f"http://127.0.0.1:{server.server_address[1]}") is None
    finally:
        server.shutdown()
        server.server_close()
