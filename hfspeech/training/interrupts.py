"""A Ctrl-C (or SIGTERM, SIGHUP) during a training command is never lost, not even one Python drops.

The signal's handler raises KeyboardInterrupt (or `Terminated`, hfspeech.cli.termination) wherever the main thread
is. Where that is a finalizer (`__del__`, a weakref callback) run by the garbage collector, Python prints
"Exception ignored in: ..." and goes on: the run trained to its end. Training lands there often: accelerate
collects garbage as each training loop starts (`free_memory`, ~0.3 s), finalizing pyparsing's objects and the
self-referencing metrics (evaluate's) of an earlier run or fold. Collecting garbage ourselves before and after a run
cost 0.3-0.5 s a call and did not close that hole.

So, while a training command runs (`interrupts_kept`, the outermost `process_state_kept` scope, main thread only),
the handlers of those signals note the interrupt they raise, and `InterruptsActedOn`, a callback of every Trainer
the recipe builds, raises it again at the next step, evaluation step or evaluation if it was lost; one lost after
the last of those is raised as the scope ends. One lost before the Trainer exists (data preparation, model set-up)
is acted on when training begins, before its first step. A handler that raises nothing (a caller's own, which
only sets a flag) is left to decide, and a signal left at its default or ignored is left alone. The handlers as
they were are put back as the scope ends (a notebook's own SIGINT handler included), except one that replaced
itself meanwhile: `sigterm_raises`' handler sets the default as it raises, so that a second SIGTERM kills.

What an interrupted (or failed) run leaves behind goes with it: its DataLoader workers (`close_batch_generators`)
and, on an accelerator, its model's memory (`accelerator_memory_released`).
"""

from __future__ import annotations

import contextlib
import inspect
import signal
import sys
import threading
from typing import Callable, Iterator, Optional

from transformers import TrainerCallback

# Ctrl-C, and what `hfspeech.cli.termination` raises `Terminated` for where the platform has it
WATCHED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_pending: list[KeyboardInterrupt] = []  # the interrupt a watched handler raised in this scope, until acted on


def _noting(handler: Callable) -> Callable:
    """`handler`, noting the KeyboardInterrupt it raises before it goes on its way (and perhaps into a finalizer)."""

    def noting_handler(signum, frame):
        try:
            return handler(signum, frame)
        except KeyboardInterrupt as interrupt:
            _pending[:] = [interrupt]
            raise

    noting_handler.__wrapped__ = handler  # `cli.termination` still knows its own in a forked child
    return noting_handler


def _in_flight(interrupt: BaseException) -> bool:
    """Whether `interrupt` is the exception being handled now (an `except` or `finally` on its way out): not lost."""
    current: Optional[BaseException] = sys.exc_info()[1]
    seen = set()
    while current is not None and id(current) not in seen:
        if current is interrupt:
            return True
        seen.add(id(current))
        current = current.__context__
    return False


def raise_if_lost() -> None:
    """Raise the interrupt a handler raised in this scope if it was lost (dropped in a finalizer), once."""
    if not _pending or _in_flight(_pending[0]):
        return
    interrupt = _pending.pop()
    raise interrupt.with_traceback(None)


class InterruptsActedOn(TrainerCallback):
    """A Ctrl-C or SIGTERM that Python dropped in a finalizer stops the run at the next step or evaluation step,
    as it would have where it arrived (`hfspeech.training.interrupts`)."""

    def _act(self, args, state, control, **kwargs):
        raise_if_lost()

    on_train_begin = on_epoch_begin = on_step_begin = on_substep_end = on_step_end = _act
    on_prediction_step = on_evaluate = _act


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """Inside, the watched signals' Python handlers note the interrupt they raise (`InterruptsActedOn` raises it
    again if it was lost); one lost and still not acted on is raised as the block ends without an error. The
    handlers are put back after. Outside the main thread (where no handler can be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed = {}
    for signum in WATCHED_SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler):  # not SIG_DFL, SIG_IGN, nor one set from C (None): those raise nothing here
            installed[signum] = (handler, _noting(handler))
            signal.signal(signum, installed[signum][1])
    _pending.clear()
    try:
        yield
        accelerator_memory_released()  # (a Ctrl-C dropped in this collection is acted on just below)
        lost = list(_pending)
    finally:
        _pending.clear()
        for signum, (previous, ours) in installed.items():
            if signal.getsignal(signum) is ours:  # not one that replaced itself (a second SIGTERM kills)
                signal.signal(signum, previous)
    if lost:
        raise lost[0].with_traceback(None)


def close_batch_generators(traceback) -> None:
    """Close the generators the frames of a failed or interrupted `train` hold (accelerate's batch iterator).
    A notebook keeps the last traceback for %debug, and with it the DataLoader iterator: its worker processes
    and their pipes lived until the next error (2 workers, 17 fds after Ctrl-C with --dataloader_num_workers 2).
    Closed, the iterator is dropped and shuts its workers down; the frames' other locals stay for debugging."""
    while traceback is not None:
        for value in list(traceback.tb_frame.f_locals.values()):
            if inspect.isgenerator(value):
                with contextlib.suppress(Exception):  # the run's own error is the one to report
                    value.close()
        traceback = traceback.tb_next


def accelerator_memory_released() -> None:
    """A finished run's model, kept in reference cycles, collected and its device memory given back where an
    accelerator holds it: after an in-process `main(["train", ...])` returned, a notebook's GPU memory stayed
    allocated until Python's next full collection (reviewer R5; the next train loaded its model beside it). On CPU
    nothing: a collection costs 0.3 s, and the next one gives the memory back."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_initialized() or (mps is not None and mps.is_available()):
        from accelerate.utils.memory import clear_device_cache

        clear_device_cache(garbage_collection=True)

