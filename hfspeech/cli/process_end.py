"""How a process that ran the `hfspeech` command as its program ends: `sys.exit`, except after a process group.

A process of `accelerate launch` (or torchrun) whose command joined a torch.distributed group, and left it
(`hfspeech.cli.leave_process_group`: destroy_process_group, as torch asks), still now and then died of SIGABRT in
Python's interpreter teardown ("terminate called without an active exception", and with faulthandler on: no
Python frame left), after a finished run or after its one-line refusal: the launch then printed torchrun's failure
block under the line and exit status -6 for the process (CI, tests/test_multiprocess41.py, once; the other
two-machine tests accepted it). The same abort, reproduced with a bare torchrun script of three
`all_gather_object` calls that then exits without destroying its group, on two busy cores: 6 launches in 80, and
none in 60 once that script ended by `os._exit` after the steps below (with the group destroyed: 0 in 38; the
hfspeech process that aborted in CI had destroyed it). Such a process therefore ends without the
teardown (C++ static destructors included), after the parts of it that matter: other non-daemon threads joined,
atexit handlers run (logging's flush, multiprocessing's children, temporary folders' finalizers), stdout and
stderr flushed. Every other process, and every caller of `hfspeech.cli.main` in its own program, ends as before.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

_left: list[bool] = []


def left_a_process_group() -> None:
    """Called when the command's process group was destroyed: this process ends by `end_process`'s short way."""
    _left.append(True)


def end_process(code: int) -> NoReturn:
    """`sys.exit(code)` for a process whose program `hfspeech.cli.main` was (the `hfspeech` command, `python -m
    hfspeech`, recipes/finetune.py); after a process group, the teardown skipped as the module says."""
    if not _left:
        sys.exit(code)
    for thread in threading.enumerate():  # what the interpreter waits for first at exit
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the public atexit has no other way to run them; Python runs them so at exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a reader gone, a closed stream: nothing left to say there
            stream.flush()
    os._exit(code)
