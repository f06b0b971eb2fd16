"""SIGTERM and SIGHUP handled as Ctrl-C is, while a command runs; standard streams the caller closed.

A cancelled CI job, `kill`, or a container stopping sends SIGTERM, and an ssh session closed under a command run
without nohup sends SIGHUP; by default Python dies of either at once: no message, and none of the cleanup Ctrl-C
gets (an export's or staging's scratch folder removed, a partial output never moved in, DataLoader workers
stopped). Here each raises `Terminated` (a KeyboardInterrupt, so every `except KeyboardInterrupt` and `finally`
runs), the command says `hfspeech X: terminated` (or `hung up`), and then the process dies of that signal after
all, as the sender meant (the shell's status 143, or 129; a caller in the same process, a test runner, stops as it
did before). Left alone: a signal the parent set to be ignored (`nohup` ignores SIGHUP), threads other than the
main one, the ranks of `accelerate launch` / torchrun (their agent sends SIGTERM and then waits: a rank blocked in
a C call would not run a Python handler), and every forked child (datasets' decoding workers): it gets the
signals' default at fork, so `Pool.terminate()` kills it at once instead of waiting for its C call to return.
Windows has neither SIGHUP nor fork (a spawned child starts with the defaults): there only SIGTERM is taken.

A script or a service may start a command with a standard stream closed (`2>&-`, `>&-`, `<&-`), and Python makes
that stream None: `print(..., file=sys.stderr)` then printed to stdout (print's default), so error lines landed in
the results, and `sys.stdout.flush()` or `sys.stdin.isatty()` was an AttributeError traceback. `closed_streams_kept`
puts the null device on each closed descriptor (a file opened later would take it, and C libraries' writes to
descriptor 2 with it), discards what goes to a closed stderr, and makes a closed stdout refuse its first write with
the one-line error, as `ls >&-` does: a command that prints nothing runs as before.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import signal
import sys
import threading
from typing import Iterator


# The signals raised as `Terminated` (SIGHUP: none on Windows), each with the words that say it
ENDING_SIGNALS = {getattr(signal, name): words for name, words in (
    ("SIGTERM", "terminated"), ("SIGHUP", "hung up (SIGHUP: its terminal closed; nohup, tmux or setsid outlive it)"))
    if hasattr(signal, name)}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`signum`), raised where Ctrl-C is (`hfspeech.cli.termination`)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = signum


def said_stopped(command: str, stopped: KeyboardInterrupt) -> int:
    """`hfspeech COMMAND: interrupted` (Ctrl-C), `terminated` (SIGTERM) or `hung up` (SIGHUP) on stderr; the
    shell's code for it (128 + the signal). A terminal that hung up refuses the line (EIO): the code stands."""
    signum = stopped.signum if isinstance(stopped, Terminated) else signal.SIGINT
    with contextlib.suppress(OSError, ValueError):
        print(f"hfspeech {command}: {ENDING_SIGNALS.get(signum, 'interrupted')}", file=sys.stderr)
    return 128 + signum


_received: list[int] = []  # the signal that arrived while a command ran with the default handler before it
_fork_hook: list[bool] = []


def _raise_terminated(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one during the cleanup kills outright
    _received.append(signum)
    raise Terminated(signum)


def _default_in_child() -> None:
    """A training command wraps the handler (`training.interrupts`, `__wrapped__` naming it): the child's is ours."""
    for signum in ENDING_SIGNALS:
        if inspect.unwrap(signal.getsignal(signum) or signal.SIG_DFL) is _raise_terminated:
            signal.signal(signum, signal.SIG_DFL)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise `Terminated` in this process (each one not ignored); the
    handlers before it are put back after."""
    if threading.current_thread() is not threading.main_thread() or os.environ.get("TORCHELASTIC_RUN_ID"):
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in ENDING_SIGNALS}
    taken = [signum for signum, handler in previous.items() if handler is not signal.SIG_IGN]
    if not _fork_hook and hasattr(os, "register_at_fork"):  # Windows has no fork, so no hook to take
        os.register_at_fork(after_in_child=_default_in_child)
        _fork_hook.append(True)
    _received.clear()
    for signum in taken:
        signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum in taken:
            signal.signal(signum, previous[signum])
        if _received and previous[_received[0]] is not signal.SIG_DFL:  # the caller's own handler decides
            _received.clear()


def die_of_sigterm_if_received() -> None:
    """After the command said `terminated` (or `hung up`) and cleaned up: die of the signal it got, as the sender
    meant. A stream that cannot be flushed (a terminal gone with SIGHUP) does not keep it alive."""
    if _received:
        signum = _received[0]
        _received.clear()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # never None: `closed_streams_kept` holds around it
                stream.flush()
        os.kill(os.getpid(), signum)


CLOSED_STDOUT = ("stdout: closed (the command was started without one, as with >&-), and this command prints its "
                 "output there; give it a file, a pipe or /dev/null")


class ClosedStdout(io.TextIOWrapper):
    """sys.stdout where the caller closed it: what is printed goes to the null device, as a closed stderr's does.
    Only a command whose results are stdout refuses it first (`hfspeech.cli`, `CLOSED_STDOUT`): refusing every
    print stopped `train` at its first log line (transformers' PrinterCallback), its run thrown away."""

    def __init__(self):
        super().__init__(open(os.devnull, "wb"), encoding="utf-8")


def stdout_was_closed() -> bool:
    return isinstance(sys.stdout, ClosedStdout)


@contextlib.contextmanager
def closed_streams_kept() -> Iterator[None]:
    """Inside, a standard stream the caller closed is the null device on its descriptor, and for Python: stdin
    stays None (`stream` says there is no audio), stderr and stdout discard (`ClosedStdout`). As they were after."""
    before = sys.stdin, sys.stdout, sys.stderr
    for descriptor, name in enumerate(("stdin", "stdout", "stderr")):
        if getattr(sys, name) is None and _descriptor_free(descriptor):
            null = os.open(os.devnull, os.O_RDWR)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")
    if sys.stdout is None:
        sys.stdout = ClosedStdout()
    opened = [new for new, old in zip((sys.stdout, sys.stderr), before[1:]) if new is not old]
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = before
        for stream in opened:
            stream.close()


def _descriptor_free(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return True
    return False  # taken since Python started (a file this process opened): left alone
