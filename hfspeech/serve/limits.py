"""What a long-running server needs from its process: enough file descriptors, and a quiet log when they run out.

Every connection holds a file descriptor. Under a soft `ulimit -n` of 256 (or systemd's 1024) a few hundred
silent connections used them all: Python 3.11's asyncio then logged a traceback "socket.accept() out of system
resource" for each accept it retried (up to the backlog, 2048, every second: 20 MB of log in 30 s), and
`/health` took 15 s to answer; and each failed accept left a retry that, once the server had closed its socket,
logged its own traceback at shutdown (2,000 of them, 31 MB). So the server raises the soft limit to the hard one
(capped) for its lifetime and puts it back when it returns (a notebook's process is left as it was found;
`--workers` processes inherit it), the accept error is logged at most once every few seconds, with a count and
what to do, and the retries' "Invalid file descriptor" on a closed server socket not at all. Out of descriptors
under the hard limit, a new connection (a `/health` probe too) still waits until one is freed: a silent
connection is closed after `--request_timeout` (connections.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator, Optional

MOST_OPEN_FILES = 65536  # plenty for one server; some systems' hard limit is "unlimited" or a billion
ACCEPT_ERROR = "socket.accept() out of system resource"  # asyncio's message (selector_events._accept_connection)
ACCEPT_ERROR_EVERY = 5.0  # seconds between two log lines about it
ACCEPT_RETRY = "Exception in callback BaseSelectorEventLoop._start_serving"  # its retry, after the socket closed


@contextlib.contextmanager
def more_open_files(most: int = MOST_OPEN_FILES) -> Iterator[None]:
    """The soft RLIMIT_NOFILE raised to the hard limit (at most `most`) inside the block, put back after it.
    No `resource` module (Windows), or a limit the system refuses (macOS's cap below the hard limit): as it was."""
    try:
        import resource
    except ImportError:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = most if hard == resource.RLIM_INFINITY else min(hard, most)
    raised = soft != resource.RLIM_INFINITY and soft < wanted
    if raised:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            raised = False
    try:
        yield
    finally:
        if raised:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class AcceptErrorThrottle(logging.Filter):
    """On the `asyncio` logger: the first accept error passes (reworded, without its traceback), the next ones
    within `every` seconds are counted and dropped, and the first after them says how many there were."""

    def __init__(self, every: float = ACCEPT_ERROR_EVERY, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every, self.clock = every, clock
        self.last_logged = None  # when the last line about it was let through
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if str(record.msg).startswith(ACCEPT_RETRY) and isinstance(error, ValueError):
            return False  # "Invalid file descriptor: -1": the server closed, nothing left to accept
        if not str(record.msg).startswith(ACCEPT_ERROR):
            return True
        now = self.clock()
        if self.last_logged is not None and now - self.last_logged < self.every:
            self.dropped += 1
            return False
        since = f" ({self.dropped} more since the last such line)" if self.dropped else ""
        record.msg = (f"too many open connections, a new one cannot be accepted ({error or 'out of resources'})"
                      f"{since}: raise ulimit -n or lower --max_requests")
        record.args, record.exc_info, record.exc_text = (), None, None
        self.last_logged, self.dropped = now, 0
        return True


@contextlib.contextmanager
def quiet_accept_errors(**throttle) -> Iterator[AcceptErrorThrottle]:
    """`AcceptErrorThrottle` on the `asyncio` logger inside the block (a server's lifetime), removed after it;
    one already there (a server inside a server's block) is the one used, and left."""
    log = logging.getLogger("asyncio")
    there = [quiet for quiet in log.filters if isinstance(quiet, AcceptErrorThrottle)]
    quiet = there[0] if there else AcceptErrorThrottle(**throttle)
    log.addFilter(quiet)
    try:
        yield quiet
    finally:
        if not there:
            log.removeFilter(quiet)


def quiet_accept_errors_in_this_process() -> None:
    """The throttle for good: a `--workers` process, which serves until it ends."""
    log = logging.getLogger("asyncio")
    if not any(isinstance(quiet, AcceptErrorThrottle) for quiet in log.filters):
        log.addFilter(AcceptErrorThrottle())


def memory_limit_bytes() -> Optional[int]:
    """The memory this process's cgroup allows (v2 `memory.max`, v1 `memory.limit_in_bytes`; the smallest up the
    tree, as `cpu_threads` reads the CPU quota), or None: no limit ("max", v1's page-rounded 2^63), or none read."""
    from hfspeech.cpu_threads import CGROUP_ROOT, process_cgroups, read_numbers, up_the_tree

    groups, limits = process_cgroups(), []
    files = [folder / "memory.max" for folder in up_the_tree(CGROUP_ROOT, groups[""])] if "" in groups else []
    if "memory" in groups:
        files += [folder / "memory.limit_in_bytes" for folder in up_the_tree(CGROUP_ROOT / "memory", groups["memory"])]
    for words in map(read_numbers, files):
        if words and words[0].isdigit() and int(words[0]) < 2**62:
            limits.append(int(words[0]))
    return min(limits, default=None)


def bodies_beyond_memory(max_requests: Optional[int], max_body_bytes: int, workers: int) -> Optional[str]:
    """A warning when the request bodies the server may hold at once (`--max_requests` x `--max_body_mb` per
    worker, before any is decoded) pass the memory limit of its container: 40 bodies of 24 MB, each allowed by the
    defaults (64 x 25 MB), got a server under a 1 GiB limit killed by the kernel within 5 s, every request in flight
    lost, where lower limits answer 503 "busy" or 413 and live on."""
    limit = memory_limit_bytes()
    if limit is None or not max_requests or max_requests * max_body_bytes * workers <= limit:
        return None
    each = f"{workers} workers x " if workers > 1 else ""
    return (f"warning: {each}--max_requests {max_requests} x --max_body_mb {max_body_bytes / 2**20:g} is "
            f"{workers * max_requests * max_body_bytes / 2**20:.0f} MB of request bodies at once, more than this "
            f"container's memory limit ({limit / 2**20:.0f} MB, cgroup): past it the kernel kills the server with "
            "every request in flight; lower --max_requests or --max_body_mb")
