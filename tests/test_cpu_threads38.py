"""Threads sized by the CPUs the process may use (`hfspeech.cpu_threads`): a cgroup quota read from made-up cgroup
files (the module's paths pointed at a tmp folder), the CPU affinity from a real `taskset`, and the CLI leaving
torch's thread count as it found it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from conftest import save_random_baseline
from onnx import TensorProto, helper

from hfspeech import cpu_threads
from hfspeech.cli import main
from hfspeech.inference.backends import OnnxBackend
from hfspeech.serve.environment import set_for_workers

REPO = Path(__file__).resolve().parents[1]
MANY_CPUS = pytest.mark.skipif(cpu_threads.affinity_cpus() < 2, reason="a cap needs 2 CPUs or more to run on")


@pytest.fixture
def cgroup(tmp_path, monkeypatch):
    """A made-up cgroup tree and /proc/self/cgroup; no thread variable of the user's or hfspeech's set.
    `cgroup(proc_line, {relative file: text})` writes them."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc_self_cgroup"
    root.mkdir()
    monkeypatch.setattr(cpu_threads, "CGROUP_ROOT", root)
    monkeypatch.setattr(cpu_threads, "PROC_CGROUP", proc)
    for name in (*cpu_threads.USER_THREAD_ENVS, cpu_threads.THREADS_ENV):
        monkeypatch.delenv(name, raising=False)

    def write(proc_lines: str, files: dict[str, str]) -> None:
        proc.write_text(proc_lines)
        for relative, text in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text + "\n")
    return write


def test_a_v2_quota_of_one_cpu_is_one_usable_cpu(cgroup):
    cgroup("0::/kubepods/pod1/box\n", {"cpu.max": "max 100000", "kubepods/pod1/box/cpu.max": "100000 100000"})
    assert cpu_threads.cgroup_cpu_limit() == 1
    assert cpu_threads.cpu_limit() == (1, "the cgroup quota") or cpu_threads.affinity_cpus() == 1
    assert cpu_threads.usable_cpus() == 1


def test_a_v2_quota_rounds_up_and_max_is_no_quota(cgroup):
    cgroup("0::/box\n", {"box/cpu.max": "150000 100000"})
    assert cpu_threads.cgroup_cpu_limit() == 2
    cgroup("0::/box\n", {"box/cpu.max": "max 100000"})
    assert cpu_threads.cgroup_cpu_limit() is None
    assert cpu_threads.usable_cpus() == cpu_threads.affinity_cpus()


def test_a_parent_quota_binds_and_a_host_path_falls_back_to_the_mount(cgroup):
    cgroup("0::/outer/inner\n", {"outer/cpu.max": "200000 100000", "outer/inner/cpu.max": "max 100000"})
    assert cpu_threads.cgroup_cpu_limit() == 2
    cgroup("0::/host/path/not/mounted/here\n", {"cpu.max": "50000 100000"})  # no cgroup namespace: the mount's own
    assert cpu_threads.cgroup_cpu_limit() == 1


def test_a_v1_quota_is_read_from_its_cpu_controller_and_minus_one_is_none(cgroup):
    cgroup("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
           {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"})
    assert cpu_threads.cgroup_cpu_limit() == 3
    cgroup("4:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1"})
    assert cpu_threads.cgroup_cpu_limit() is None


def test_unreadable_cgroup_files_are_no_limit(cgroup, tmp_path):
    assert cpu_threads.cgroup_cpu_limit() is None  # no /proc/self/cgroup at all
    cgroup("not a cgroup line\n0::/box\n", {"box/cpu.max": "a lot"})
    assert cpu_threads.cgroup_cpu_limit() is None
    assert cpu_threads.usable_cpus() == cpu_threads.affinity_cpus()


def one_cpu_quota(cgroup) -> None:
    cgroup("0::/\n", {"cpu.max": "100000 100000"})


@pytest.fixture(scope="module")
def identity_onnx(tmp_path_factory) -> Path:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    path = tmp_path_factory.mktemp("onnx") / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def intra_op_threads(backend: OnnxBackend) -> int:
    return backend.session.get_session_options().intra_op_num_threads


@MANY_CPUS
def test_onnx_sessions_get_the_quota_unless_the_caller_passed_options(cgroup, identity_onnx):
    one_cpu_quota(cgroup)
    assert intra_op_threads(OnnxBackend(identity_onnx, None)) == 1  # onnxruntime's default: the host's cores
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 3
    assert intra_op_threads(OnnxBackend(identity_onnx, None, options)) == 3


@MANY_CPUS
def test_the_users_omp_num_threads_leaves_torch_alone_and_reaches_onnxruntime(cgroup, monkeypatch, identity_onnx):
    one_cpu_quota(cgroup)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads.thread_budget() is None
    assert intra_op_threads(OnnxBackend(identity_onnx, None)) == 2  # the user's count: onnxruntime reads no OMP_*
    assert cpu_threads.worker_environment(4) == {}
    before = torch.get_num_threads()
    with cpu_threads.torch_threads_capped():
        assert torch.get_num_threads() == before


@pytest.fixture
def torch_threads():
    """torch's count before the test, set back after it whatever the test did."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@MANY_CPUS
def test_torch_is_held_to_the_quota_inside_and_set_back_after(cgroup, torch_threads):
    one_cpu_quota(cgroup)
    torch.set_num_threads(cpu_threads.affinity_cpus())  # torch's default here: it follows the affinity
    with cpu_threads.torch_threads_capped():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == cpu_threads.affinity_cpus()
    torch.set_num_threads(cpu_threads.affinity_cpus() + 3)  # above the affinity: a caller's own choice, kept
    with cpu_threads.torch_threads_capped():
        assert torch.get_num_threads() == cpu_threads.affinity_cpus() + 3


@pytest.fixture(scope="module")
def cnn_and_clip(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("threads")
    model = save_random_baseline(folder / "cnn", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    clip = folder / "tone.wav"
    sf.write(clip, (0.3 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 440)).astype(np.float32), 16000)
    return model, clip


@MANY_CPUS
def test_main_says_the_cap_and_leaves_torch_as_it_found_it(cgroup, torch_threads, cnn_and_clip, caplog, capsys):
    one_cpu_quota(cgroup)
    torch.set_num_threads(cpu_threads.affinity_cpus())
    with caplog.at_level(logging.WARNING, logger="hfspeech.cpu_threads"):
        assert main(["predict", *map(str, cnn_and_clip)]) == 0
        assert main(["predict", "/nowhere/model", str(cnn_and_clip[1])]) == 2  # a mistake: put back as well
    said = f"note: using 1 of {os.cpu_count()} CPUs' threads: the cgroup quota"
    assert [r.getMessage() for r in caplog.records if r.name == "hfspeech.cpu_threads"] == [said, said]
    assert torch.get_num_threads() == cpu_threads.affinity_cpus()
    assert "OMP_NUM_THREADS" not in os.environ and cpu_threads.THREADS_ENV not in os.environ


@MANY_CPUS
def test_each_server_worker_gets_its_share_and_the_environment_is_put_back(cgroup, monkeypatch, identity_onnx):
    cgroup("0::/\n", {"cpu.max": "max 100000"})
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    share = str(max(1, cpu_threads.usable_cpus() // 2))
    with set_for_workers({"X_SETTING": "1"}, workers=2):
        assert (os.environ["OMP_NUM_THREADS"], os.environ[cpu_threads.THREADS_ENV]) == (share, share)
        assert not cpu_threads.user_chose_threads()  # hfspeech's own: a worker's sessions take the share
        assert intra_op_threads(OnnxBackend(identity_onnx, None)) == int(share)
    assert "OMP_NUM_THREADS" not in os.environ and cpu_threads.THREADS_ENV not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # the user's: the workers inherit it as it is
    with set_for_workers({"X_SETTING": "1"}, workers=2):
        assert os.environ["OMP_NUM_THREADS"] == "5" and cpu_threads.THREADS_ENV not in os.environ


@MANY_CPUS
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_a_command_under_taskset_runs_one_thread_and_says_so(cnn_and_clip):
    script = ("import sys, torch\n"
              "from hfspeech.cli import main\ncode = main(sys.argv[1:])\n"
              "print('threads', torch.get_num_threads(), 'code', code, file=sys.stderr)")
    env = {name: value for name, value in os.environ.items()
           if name not in (*cpu_threads.USER_THREAD_ENVS, cpu_threads.THREADS_ENV)}
    done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", script, "predict", *map(str, cnn_and_clip)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert f"using 1 of {os.cpu_count()} CPUs' threads: the CPU affinity" in done.stderr, done.stderr
    assert "threads 1 code 0" in done.stderr


@MANY_CPUS
def test_torch_first_imported_by_the_command_reads_the_quota(tmp_path, cnn_and_clip):
    """torch not imported when `main()` starts (the `hfspeech` command): the command's import of it reads the cap;
    OMP_NUM_THREADS is gone again after, torch keeps the count (the one this process may use)."""
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "cpu.max").write_text("100000 100000\n")
    (tmp_path / "proc_cgroup").write_text("0::/\n")
    script = ("import os, sys; from pathlib import Path\n"
              "from hfspeech import cpu_threads\nfrom hfspeech.cli import main\n"
              f"cpu_threads.CGROUP_ROOT, cpu_threads.PROC_CGROUP = Path({str(tmp_path / 'root')!r}), "
              f"Path({str(tmp_path / 'proc_cgroup')!r})\n"
              "assert 'torch' not in sys.modules\ncode = main(sys.argv[1:])\nimport torch\n"
              "print('threads', torch.get_num_threads(), 'code', code, os.environ.get('OMP_NUM_THREADS'),\n"
              "      file=sys.stderr)")
    env = {name: value for name, value in os.environ.items()
           if name not in (*cpu_threads.USER_THREAD_ENVS, cpu_threads.THREADS_ENV)}
    done = subprocess.run([sys.executable, "-c", script, "predict", *map(str, cnn_and_clip)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert f"using 1 of {os.cpu_count()} CPUs' threads: the cgroup quota" in done.stderr, done.stderr
    assert "threads 1 code 0 None" in done.stderr, done.stderr
