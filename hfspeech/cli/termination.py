"""SIGTERM handled as Ctrl-C is, while a command runs.

A cancelled CI job, `kill`, or a container stopping sends SIGTERM, and by default Python dies of it at once: no
message, and none of the cleanup Ctrl-C gets (an export's or staging's scratch folder removed, a partial output
never moved in, DataLoader workers stopped). Here SIGTERM raises `Terminated` (a KeyboardInterrupt, so every
`except KeyboardInterrupt` and `finally` runs), the command says `hfspeech X: terminated`, and then the process
dies of SIGTERM after all, as the sender meant (the shell's status 143; a caller in the same process, a test
runner, stops as it did before). Left alone: a SIGTERM the parent set to be ignored, threads other than the main
one, the ranks of `accelerate launch` / torchrun (their agent sends SIGTERM and then waits: a rank blocked in a C
call would not run a Python handler), and every forked child (datasets' decoding workers): it gets SIGTERM's
default at fork, so `Pool.terminate()` kills it at once instead of waiting for its C call to return.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C is (`hfspeech.cli.termination`)."""


def said_stopped(command: str, stopped: KeyboardInterrupt) -> int:
    """`hfspeech COMMAND: interrupted` (Ctrl-C) or `terminated` (SIGTERM) on stderr; the shell's code for it."""
    terminated = isinstance(stopped, Terminated)
    print(f"hfspeech {command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    return 143 if terminated else 130


_received: list[bool] = []  # a SIGTERM arrived while a command ran with the default handler before it
_fork_hook: list[bool] = []


def _raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during the cleanup kills outright
    _received.append(True)
    raise Terminated()


def _default_in_child() -> None:
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` in this process; the handler before it is put back after."""
    previous = signal.getsignal(signal.SIGTERM)
    if (threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN
            or os.environ.get("TORCHELASTIC_RUN_ID")):
        yield
        return
    if not _fork_hook:
        os.register_at_fork(after_in_child=_default_in_child)
        _fork_hook.append(True)
    _received.clear()
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous is not signal.SIG_DFL:  # the caller's own handler decides
            _received.clear()


def die_of_sigterm_if_received() -> None:
    """After the command said `terminated` and cleaned up: die of the SIGTERM it got, as the sender meant."""
    if _received:
        _received.clear()
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGTERM)
