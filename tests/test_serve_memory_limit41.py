"""A server whose defaults let it hold more request bodies than its container's memory (audit MS, session 41): 40
concurrent 24 MB bodies, each within `--max_body_mb 25` and `--max_requests 64`, got a server under a 1 GiB limit
killed by the kernel within 5 s. `serve` now says so at start, read from the cgroup (v2 `memory.max`, v1
`memory.limit_in_bytes`, made-up files here as tests/test_cpu_threads*.py make them)."""

from __future__ import annotations

import pytest

from hfspeech import cpu_threads
from hfspeech.serve.limits import bodies_beyond_memory, memory_limit_bytes

MB = 2**20


@pytest.fixture
def cgroup(tmp_path, monkeypatch):
    """Writes this process's cgroup files: `cgroup("0::/pod", {"pod/memory.max": "1073741824"})`."""
    def write(membership: str, files: dict[str, str]) -> None:
        (tmp_path / "proc_cgroup").write_text(membership + "\n")
        for name, text in files.items():
            (tmp_path / "root" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "root" / name).write_text(text + "\n")
    monkeypatch.setattr(cpu_threads, "PROC_CGROUP", tmp_path / "proc_cgroup")
    monkeypatch.setattr(cpu_threads, "CGROUP_ROOT", tmp_path / "root")
    return write


def test_the_defaults_past_a_1_gib_pod_are_warned_of(cgroup):
    cgroup("0::/kubepods/pod1", {"kubepods/pod1/memory.max": str(1024 * MB), "kubepods/memory.max": "max"})
    assert memory_limit_bytes() == 1024 * MB
    warning = bodies_beyond_memory(64, 25 * MB, 1)
    assert warning is not None and "1600 MB of request bodies" in warning and "(1024 MB, cgroup)" in warning
    assert bodies_beyond_memory(16, 25 * MB, 1) is None  # 400 MB: within it
    assert "3 workers x" in bodies_beyond_memory(16, 25 * MB, 3)  # 1200 MB in all


def test_a_v1_limit_is_read_and_no_limit_says_nothing(cgroup):
    cgroup("5:memory:/docker/abc", {"memory/docker/abc/memory.limit_in_bytes": str(512 * MB)})
    assert memory_limit_bytes() == 512 * MB and bodies_beyond_memory(64, 25 * MB, 1) is not None
    cgroup("5:memory:/docker/abc", {"memory/docker/abc/memory.limit_in_bytes": "9223372036854771712"})  # unlimited
    assert memory_limit_bytes() is None and bodies_beyond_memory(64, 25 * MB, 4) is None
