"""How many threads hfspeech's compute may use: the CPUs this process may run on, not the host's cores.

torch and onnxruntime size their thread pools by the machine: a 1-CPU Kubernetes pod (cgroup `cpu.max`
"100000 100000") on a 16-core node got 16 intra-op threads fighting over one CPU, and `serve --workers 4` on 8
cores ran 4 processes x 8 threads. torch follows the CPU affinity (taskset, `docker --cpuset-cpus`), onnxruntime
does not, and neither reads a cgroup's quota (`docker --cpus`, a pod's CPU limit). So hfspeech gives them the
smaller of the affinity and the quota (`usable_cpus`): the CLI for the length of a command (`torch_threads_capped`),
onnxruntime sessions hfspeech opens (`onnx_session_options`) or has a library open (`onnx_sessions_capped`: optimum's
export), each worker of `serve --workers N` its share.

The user's choice wins: with OMP_NUM_THREADS or MKL_NUM_THREADS set, no cap is worked out. torch reads the
variable itself; onnxruntime reads neither, so its sessions get that count (`onnx_threads`): OMP_NUM_THREADS=1 for a
batch job ran onnxruntime's pool at the host's cores.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Iterator, Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")  # module constants, so tests can point them at made-up cgroup files
PROC_CGROUP = Path("/proc/self/cgroup")
V1_CPU_FOLDERS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")  # where a v1 hierarchy mounts its cpu controller
USER_THREAD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# The threads hfspeech gave this process (a server worker's share; a command's torch, read when torch is imported):
# set together with an OMP_NUM_THREADS of the same number, which tells that OMP_NUM_THREADS from a user's own
THREADS_ENV = "HFSPEECH_NUM_THREADS"

logger = logging.getLogger(__name__)


def process_cgroups() -> dict[str, str]:
    """controller -> this process's group, from /proc/self/cgroup ("" is cgroup v2's); {} when unreadable."""
    try:
        lines = PROC_CGROUP.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    groups = {}
    for fields in (line.split(":", 2) for line in lines):
        if len(fields) == 3:
            groups.update({controller: fields[2] for controller in fields[1].split(",")})
    return groups


def up_the_tree(mount: Path, group: str) -> Iterator[Path]:
    """The group's folder under `mount`, then each parent's up to `mount` itself: a quota higher up binds as well.
    Without a cgroup namespace /proc names the host's path, which the container's mount does not have: the
    folders that are not there are skipped, and the mount's own (the container's group) is read."""
    parts = [part for part in group.strip("/").split("/") if part not in ("", ".", "..")]
    for depth in range(len(parts), -1, -1):
        yield mount.joinpath(*parts[:depth])


def read_numbers(path: Path) -> Optional[list[str]]:
    try:
        return path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None


def cpus_of(quota: str, period: str) -> Optional[int]:
    """ceil(quota / period), at least 1; None for no quota ("max", -1) or a file that does not read as one."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def v2_limit(folder: Path) -> Optional[int]:
    words = read_numbers(folder / "cpu.max")  # "max 100000" (none) or "50000 100000"
    return cpus_of(*words) if words and len(words) == 2 else None


def v1_limit(folder: Path) -> Optional[int]:
    quota, period = read_numbers(folder / "cpu.cfs_quota_us"), read_numbers(folder / "cpu.cfs_period_us")
    return cpus_of(quota[0], period[0]) if quota and period else None


def cgroup_cpu_limit() -> Optional[int]:
    """The CPUs this process's cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`) allows, or None: no quota, or none
    that could be read."""
    groups = process_cgroups()
    limits = []
    if "" in groups:
        limits += [v2_limit(folder) for folder in up_the_tree(CGROUP_ROOT, groups[""])]
    if "cpu" in groups:
        limits += [v1_limit(folder) for name in V1_CPU_FOLDERS for folder in up_the_tree(CGROUP_ROOT / name,
                                                                                           groups["cpu"])]
    return min((limit for limit in limits if limit is not None), default=None)


def affinity_cpus() -> int:
    """The CPUs this process may be scheduled on (taskset, `docker --cpuset-cpus`)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def cpu_limit() -> tuple[int, str]:
    """`(usable CPUs, what holds them there)`: the cgroup quota, the CPU affinity, or the machine itself."""
    affinity, quota = affinity_cpus(), cgroup_cpu_limit()
    if quota is not None and quota < affinity:
        return quota, "the cgroup quota"
    return affinity, "the CPU affinity" if affinity < (os.cpu_count() or 1) else "the machine"


def usable_cpus() -> int:
    """The smaller of the CPU affinity and the cgroup's CPU quota: what this process can keep busy."""
    return cpu_limit()[0]


def user_chose_threads() -> bool:
    """Whether the user set OMP_NUM_THREADS or MKL_NUM_THREADS (one hfspeech set, beside THREADS_ENV, is not)."""
    chosen = [os.environ.get(name, "") for name in USER_THREAD_ENVS]
    ours = os.environ.get(THREADS_ENV, "")
    return any(chosen) and not (ours and chosen == [ours, ""])


def thread_budget() -> Optional[tuple[int, str]]:
    """`(threads, why)` for this process's compute, or None where the user chose (`user_chose_threads`)."""
    if user_chose_threads():
        return None
    given = os.environ.get(THREADS_ENV, "")
    if given.isdigit() and int(given) > 0:
        return int(given), "the share hfspeech gave this process"
    return cpu_limit()


def capped_budget() -> Optional[tuple[int, str]]:
    """The budget (`thread_budget`) where it is below the machine's CPU count (what onnxruntime sizes its pool
    by), else None."""
    budget = thread_budget()
    return budget if budget is not None and budget[0] < (os.cpu_count() or 1) else None


def user_threads() -> Optional[int]:
    """The count the user set, read as torch reads it: MKL_NUM_THREADS over OMP_NUM_THREADS, the outer count of
    OpenMP's nested list ("4,2" is 4), no more than the host's cores (torch runs 2 threads on 2 cores with
    OMP_NUM_THREADS=16: onnxruntime given 16 ran 10x slower, and 99999999999 refused the model as "corrupt"); None
    where neither holds a positive count libgomp accepts ("1.5", "1x": torch keeps its default)."""
    for name in reversed(USER_THREAD_ENVS):
        digits = re.fullmatch(r"\s*(\d+)\s*(?:,.*)?", os.environ.get(name, ""), re.DOTALL)
        if digits and int(digits.group(1)) > 0:
            return min(int(digits.group(1)), os.cpu_count() or 1)
    return None


def onnx_threads() -> Optional[int]:
    """The intra-op threads for an onnxruntime session: the user's count (`user_threads`), which onnxruntime does
    not read, else the budget where it caps (`capped_budget`); None: onnxruntime's default, the host's cores."""
    if user_chose_threads():
        return user_threads()
    budget = capped_budget()
    return budget[0] if budget is not None else None


def onnx_session_options():
    """onnxruntime `SessionOptions` holding its intra-op pool to `onnx_threads`, or None (its default) where that is
    None. onnxruntime ignores the affinity too: under `taskset -c 0` on two cores it ran two threads."""
    threads = onnx_threads()
    if threads is None:
        return None
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return options


@contextlib.contextmanager
def onnx_sessions_capped() -> Iterator[None]:
    """onnxruntime sessions opened inside the block with its default pool (intra-op 0: the host's cores) held to
    `onnx_threads`. optimum opens its own while exporting (fixing dynamic axes, validating the outputs) and takes no
    `SessionOptions` from a caller: 16 threads in a 1-CPU pod on a 16-core node. So `onnxruntime.InferenceSession`
    is a subclass that sets the count while any such block runs (blocks of several threads share one: the first
    puts it in place, the last puts onnxruntime's back); a session given a count of its own keeps it."""
    threads = onnx_threads()
    if threads is None:  # nothing to cap: onnxruntime's default, as for hfspeech's own sessions
        yield
        return
    import onnxruntime

    with _SWAP_LOCK:
        if not _SWAPPED:
            _SWAPPED.append(onnxruntime.InferenceSession)
            onnxruntime.InferenceSession = _capped_session_class(onnxruntime.InferenceSession, threads)
        _SWAPPED.append(None)  # one more block inside
    try:
        yield
    finally:
        with _SWAP_LOCK:
            _SWAPPED.pop()
            if len(_SWAPPED) == 1:
                onnxruntime.InferenceSession = _SWAPPED.pop()


_SWAP_LOCK = threading.Lock()
_SWAPPED: list = []  # onnxruntime's own class, then one entry per block running


def _capped_session_class(original: type, threads: int) -> type:
    class CappedSession(original):
        def __init__(self, path_or_bytes, sess_options=None, *args, **kwargs):
            import onnxruntime

            sess_options = onnxruntime.SessionOptions() if sess_options is None else sess_options
            if sess_options.intra_op_num_threads == 0:
                sess_options.intra_op_num_threads = threads
            super().__init__(path_or_bytes, sess_options, *args, **kwargs)

    return CappedSession


def worker_environment(workers: int) -> dict[str, str]:
    """What each of `workers` server processes gets in its environment: an equal share of the budget, at least 1
    thread (torch reads OMP_NUM_THREADS when it is imported; onnxruntime's sessions read THREADS_ENV here); {}
    where the user chose (`user_chose_threads`) or a share is the whole machine."""
    budget = thread_budget()
    if budget is None:
        return {}
    share = max(1, budget[0] // max(1, workers))
    return {"OMP_NUM_THREADS": str(share), THREADS_ENV: str(share)} if share < (os.cpu_count() or 1) else {}


@contextlib.contextmanager
def torch_threads_capped() -> Iterator[None]:
    """torch's intra-op threads held to the budget inside the block, everything put back after it. A torch
    already imported is set (`torch.set_num_threads`) and set back; one not yet imported reads OMP_NUM_THREADS
    when the block imports it, and keeps that count after (OMP_NUM_THREADS itself is put back). A count above
    the CPU affinity is not torch's default (torch follows the affinity): a caller chose it, and it stays."""
    budget = capped_budget()
    if budget is None:
        yield
        return
    threads, why = budget
    # a warning's level: said before the command sets up its logging (Python's last-resort handler shows it)
    logger.warning("note: using %d of %d CPUs' threads: %s", threads, os.cpu_count() or 1, why)
    torch = sys.modules.get("torch")
    if torch is None:
        with environment_set({"OMP_NUM_THREADS": str(threads), THREADS_ENV: str(threads)}):
            yield
        return
    before = torch.get_num_threads()
    lower = affinity_cpus() >= before > threads
    if lower:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if lower:
            torch.set_num_threads(before)


@contextlib.contextmanager
def environment_set(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ inside the block, each put back as it was (absent, or its earlier value) after."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
