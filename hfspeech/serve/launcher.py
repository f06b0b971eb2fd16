"""`hfspeech serve` in a child process, for tests, benchmarks and notebooks: start it on a free loopback port,
wait until `/health` says the model is loaded, stop it at the end.

    with ServerProcess("runs/demo/model", "--max_batch_size", "1") as server:
        InferenceClient(model=server.url).audio_classification("clip.wav")
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Optional


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def health_status(url: str) -> Optional[str]:
    """The `status` in what `/health` of the server at `url` answers ("ok" once the model is loaded; another, with a
    503, while it loads or after it failed), None while the server does not answer at all."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return json.loads(response.read())["status"]
    except urllib.error.HTTPError as error:
        try:  # a 503's body can time out too on a busy machine: still starting, as below
            return json.loads(error.read()).get("status")
        except (OSError, ValueError):
            return None
    except OSError:
        return None


class ServerProcess:
    """The real server (the `hfspeech serve` command line, `flags` passed through) in a subprocess."""

    def __init__(self, model: str, *flags: str, host: str = "127.0.0.1", port: Optional[int] = None,
                 startup_timeout: float = 120.0, env: Optional[dict] = None):
        self.host, self.port = host, port or free_port(host)
        self.command = [sys.executable, "-m", "hfspeech.cli", "serve", str(model), "--host", host,
                        "--port", str(self.port), "--log_level", "warning", *flags]
        self.startup_timeout = startup_timeout
        self.env = {**os.environ, **(env or {})}
        self.process: Optional[subprocess.Popen] = None
        self.log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "ServerProcess":
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"hfspeech serve exited with {self.process.returncode}:\n{self.output()}")
                if self.health() == "ok":
                    return self
                time.sleep(0.2)
        except BaseException:  # Ctrl-C or an error while waiting: the server (and its workers) does not outlive it
            self.stop()
            raise
        self.stop()
        raise RuntimeError(f"hfspeech serve was not healthy after {self.startup_timeout} s:\n{self.output()}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def health(self) -> Optional[str]:
        return health_status(self.url)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
