"""One Python process that imports the slow modules once, then runs each snippet given to it in a child forked from
it: a fresh process for the snippet (its own working folder, stdout, stderr, exit status, logging set-up, module
state as the parent left it after its imports), without the seconds of importing torch and transformers again.

Made for the tests whose snippet runs under a command prefix (`setpriv`, which drops root's override of file modes):
the prefix starts the parent, and every child inherits what it set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PARENT = r"""
import json, os, sys, traceback
for name in sys.argv[1:]:
    __import__(name)
replies = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.chdir(request["cwd"])
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(handle, fd)
                os.close(handle)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            sys.stdin = open(os.devnull)
            try:
                exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
            except BaseException:
                traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)
    _, status = os.waitpid(child, 0)
    replies.write(json.dumps(os.waitstatus_to_exitcode(status)) + "\n")
    replies.flush()
"""


class ForkingPython:
    """`run(code, cwd)` as `subprocess.run([*prefix, python, "-c", code], cwd=cwd, capture_output=True, text=True)`
    would, the modules `preload` already imported. Close it (or use it as a context manager) to end the parent."""

    def __init__(self, prefix: list[str], preload: list[str], env: dict | None = None):
        environment = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
        self.streams = tempfile.mkdtemp(prefix="forked-python-")
        self.parent = subprocess.Popen([*prefix, sys.executable, "-c", PARENT, *preload], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=environment, cwd=self.streams)

    def run(self, code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        out, err = Path(self.streams) / "stdout", Path(self.streams) / "stderr"
        self.parent.stdin.write(json.dumps({"code": code, "cwd": str(cwd), "stdout": str(out), "stderr": str(err)})
                                + "\n")
        self.parent.stdin.flush()
        reply = self.parent.stdout.readline()
        if not reply:
            raise RuntimeError(f"the forking parent ended (exit status {self.parent.wait(timeout)})")
        return subprocess.CompletedProcess(["python", "-c", code], json.loads(reply), out.read_text(), err.read_text())

    def close(self) -> None:
        self.parent.stdin.close()
        self.parent.wait(timeout=60)
        for name in os.listdir(self.streams):
            os.unlink(os.path.join(self.streams, name))
        os.rmdir(self.streams)

    def __enter__(self) -> "ForkingPython":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
