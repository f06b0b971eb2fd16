"""Dynamic batching: windows from concurrent requests run through the model together.

Each request submits its windows (one for a short clip, many for a long file) and awaits their logits. One
task collects queued windows into a batch: it takes the first, then keeps taking until the batch holds
`max_batch_size` windows or `max_wait_ms` has passed since the first, then runs the batch in a single
model thread (one model instance per process, never two batches at once) while the event loop keeps
accepting requests. Under load the queue fills while a batch runs, so the next batch is full at once and
the wait is never paid; an idle server pays at most `max_wait_ms` per request. `max_batch_size=1` is
one-at-a-time serving, the baseline `benchmarks/serve.py` measures against.

A batch takes one window from each waiting request in turn (round robin), not the windows in order of
arrival: a 10-minute upload (1,200 windows) used to hold every request behind it until all its windows had
run (a 0.5 s clip waited 6 s instead of 60 ms, and under `--request_timeout` such waits became 408s).
A batch that fails is run again one request at a time, so only the request whose windows the model cannot
take gets the error, not every request that happened to share its batch.
A request that is cancelled (408, or its client left: 499) takes its windows still queued out of the line at
once: they used to keep their turns and be dropped only once taken, so 20 cancelled uploads left a live request
batches of one or two windows (a 320-window request took 2.4 s instead of 0.13 s).
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    request: int  # which `submit` call it came from: a failed batch is retried request by request


class DynamicBatcher:
    """`await submit(items)` -> one output per item, computed by `run_batch(list_of_items)` -> sequence of
    outputs, in batches of up to `max_batch_size` items gathered across callers."""

    def __init__(self, run_batch: Callable[[list], Sequence], max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Optional[Callable[[int], None]] = None, executor: Optional[ThreadPoolExecutor] = None):
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch_size must be >= 1 and max_wait_ms >= 0, got {max_batch_size}, {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = int(max_batch_size)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.on_batch = on_batch
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix="hfspeech-model")
        self.task: Optional[asyncio.Task] = None
        self.submitted = 0  # requests so far, to tell them apart

    def start(self) -> None:
        """Start collecting (from inside the running event loop)."""
        self.queues: deque[deque[_Pending]] = deque()  # one per waiting request, in turn
        self.waiting = 0  # windows queued, over all requests
        self.arrived = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._collect_forever())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: Sequence) -> list:
        if self.task is None:
            raise RuntimeError("the batcher is not started")
        loop = asyncio.get_running_loop()
        self.submitted += 1
        pending = [_Pending(item, loop.create_future(), self.submitted) for item in items]
        queue = deque(pending)
        if pending:
            self.queues.append(queue)
            self.waiting += len(pending)
            self.arrived.set()
        try:
            return list(await asyncio.gather(*(entry.future for entry in pending)))
        except BaseException:  # cancelled, or one window failed: the rest of its windows are not run
            self._forget(queue)
            raise

    def _forget(self, queue: deque) -> None:
        """A request's windows still queued, out of the line (by identity: `==` would compare the windows)."""
        for index, waiting in enumerate(self.queues):
            if waiting is queue:
                del self.queues[index]
                break
        self.waiting -= len(queue)
        for entry in queue:
            entry.future.cancel()
        queue.clear()

    async def _collect_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run(batch)

    async def _next_batch(self) -> list[_Pending]:
        # Queues and an Event rather than asyncio.Queue: a timed-out `wait_for(queue.get())` can drop an
        # item on Python 3.11 (cpython gh-86296); a timed-out wait on an Event loses nothing.
        while not self.waiting:
            self.arrived.clear()
            await self.arrived.wait()
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while self.waiting < self.max_batch_size:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return self._take_in_turn()

    def _take_in_turn(self) -> list[_Pending]:
        """Up to `max_batch_size` windows, one from each waiting request in turn; a request that still has
        windows goes to the back of the line, so the next batch starts with the request after it."""
        batch: list[_Pending] = []
        while self.queues and len(batch) < self.max_batch_size:
            queue = self.queues.popleft()
            entry = queue.popleft()
            self.waiting -= 1
            if not entry.future.done():  # a window cancelled on its own does not take a place in the batch
                batch.append(entry)
            if queue:
                self.queues.append(queue)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self.executor, self.run_batch, [entry.item for entry in batch])
        except Exception as error:  # the model failed: alone, its request gets the error; shared, retry apart
            requests = list(dict.fromkeys(entry.request for entry in batch))
            if len(requests) == 1:
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(error)
                return
            for request in requests:  # a request cancelled meanwhile (its client left) is not run again
                if alone := [entry for entry in batch if entry.request == request and not entry.future.done()]:
                    await self._run(alone)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for entry, output in zip(batch, outputs):
            if not entry.future.done():
                entry.future.set_result(output)
