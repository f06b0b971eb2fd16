"""onnxruntime's threads where hfspeech's cap does not reach by itself (`hfspeech.cpu_threads`): the user's
OMP_NUM_THREADS, which onnxruntime does not read, and the session onnxruntime's calibrator opens for static int8."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest
from conftest import save_random_baseline, write_tone_folder
from onnxruntime.capi.onnxruntime_inference_collection import Session
from test_cpu_threads38 import identity_onnx  # noqa: F401 (a fixture: an onnxruntime session to look at)

from hfspeech import cpu_threads
from hfspeech.export import export_onnx, quantize_int8
from hfspeech.inference.backends import OnnxBackend
from hfspeech.serve.environment import set_for_workers


@pytest.fixture
def quota(tmp_path, monkeypatch):
    """A made-up cgroup (v2), without a CPU quota at first; no thread variable of the user's or hfspeech's set.
    `quota(cpus)` sets its quota (None: none)."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc_self_cgroup"
    root.mkdir()
    proc.write_text("0::/\n")
    monkeypatch.setattr(cpu_threads, "CGROUP_ROOT", root)
    monkeypatch.setattr(cpu_threads, "PROC_CGROUP", proc)
    for name in (*cpu_threads.USER_THREAD_ENVS, cpu_threads.THREADS_ENV):
        monkeypatch.delenv(name, raising=False)

    def set_quota(cpus: Optional[int]) -> None:
        (root / "cpu.max").write_text(f"{cpus * 100000 if cpus else 'max'} 100000\n")
    set_quota(None)
    return set_quota


def capped_to_one() -> int:
    """onnxruntime's intra-op setting under a 1-CPU quota: 1, or its default (0) on a 1-core machine."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


def onnx_backend_threads(path: Path) -> int:
    return OnnxBackend(path, None).session.get_session_options().intra_op_num_threads


@pytest.mark.parametrize("settings, threads", [
    ({"OMP_NUM_THREADS": "1"}, 1),  # a batch job's one thread: onnxruntime ran the host's cores
    ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "3"}, 3),  # MKL_NUM_THREADS wins, as in torch
    ({"OMP_NUM_THREADS": "4,2"}, 4),  # OpenMP's nested list: the outer count, as torch reads it
    ({"OMP_NUM_THREADS": "many"}, 0),  # not a count: torch and onnxruntime keep their defaults
    ({"OMP_NUM_THREADS": "0"}, 0),
    ({"OMP_NUM_THREADS": "1.5"}, 0),  # libgomp refuses it ("Invalid value"): torch keeps its default
    ({"OMP_NUM_THREADS": "64"}, 16),  # no more than the host's cores, as torch: 64 on 16 cores ran 10x slower
])
def test_the_users_thread_count_sizes_onnxruntime_sessions(quota, monkeypatch, identity_onnx, settings, threads):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)  # the counts below fit the host's cores
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert cpu_threads.thread_budget() is None  # torch reads the variable itself: hfspeech still leaves it alone
    assert onnx_backend_threads(identity_onnx) == threads


def test_the_users_count_wins_over_the_quota_and_reaches_each_server_worker(quota, monkeypatch, identity_onnx):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    quota(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert onnx_backend_threads(identity_onnx) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    with set_for_workers({}, workers=2):  # the workers inherit the user's 5, and their sessions take it
        assert onnx_backend_threads(identity_onnx) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert onnx_backend_threads(identity_onnx) == capped_to_one()


@pytest.fixture(scope="module")
def cnn_export_and_clips(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("calibration")
    model = save_random_baseline(folder / "cnn", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    return export_onnx(model, folder / "onnx"), write_tone_folder(folder / "clips", clips_per_class=3)


@pytest.fixture
def calibration_runs(monkeypatch) -> list[int]:
    """The intra-op setting of the session behind each run of a calibrator's augmented model (onnxruntime's own
    calibrator opens it; hfspeech never sees it otherwise)."""
    seen, run = [], Session.run

    def counted(session, *args, **kwargs):
        if Path(session._model_path).name == "augmented.onnx":
            seen.append(session.get_session_options().intra_op_num_threads)
        return run(session, *args, **kwargs)
    monkeypatch.setattr(Session, "run", counted)
    return seen


@pytest.mark.parametrize("limit", ["quota", "user"])
def test_static_int8_calibration_runs_on_the_threads_hfspeech_allows(quota, monkeypatch, cnn_export_and_clips,
                                                                      calibration_runs, tmp_path, limit):
    """Under a 1-CPU quota on 2 cores (or the user's OMP_NUM_THREADS=1) the calibration session ran 2 threads;
    under a 0.5-CPU quota, static int8 of a small CNN on 64 clips took 2.2-2.4 s (median) with them, 1.2-1.4 with 1."""
    if limit == "quota":
        if capped_to_one() == 0:
            pytest.skip("a quota caps nothing on a 1-core machine")
        quota(1)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    onnx_path, clips = cnn_export_and_clips
    quantized = quantize_int8(onnx_path, tmp_path / "static", calibration_dir=clips)
    assert quantized.is_file()
    assert calibration_runs and set(calibration_runs) == {1}, calibration_runs  # each clip, both graphs
    calibration_runs.clear()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    quota(None)  # nothing to cap: the calibrator's own session, onnxruntime's default (0)
    quantize_int8(onnx_path, tmp_path / "uncapped", calibration_dir=clips)
    assert calibration_runs and set(calibration_runs) == {cpu_threads.onnx_threads() or 0}
