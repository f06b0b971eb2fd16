"""A locked-down container (a pod): no writable temporary folder, a read-only or missing home, a CPU quota.

The auditor's pod (unknown uid, read-only / and /tmp, working folder /) is simulated here without privileges:
Python's own candidate temporary folders are replaced by files (no folder to write in, for root as for anyone),
and a home that cannot be written is a file named as HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli_output, save_random_baseline
from test_cpu_threads38 import identity_onnx  # noqa: F401 (a fixture: a one-node ONNX model)
from test_permissions36 import no_home  # noqa: F401 (a fixture: HOME unset, no passwd entry, as in a pod)

from hfspeech import cpu_threads
from hfspeech.export import export_onnx

NO_SCRATCH = """
import sys, tempfile
tempfile.tempdir = None
tempfile._candidate_tempdir_list = lambda: sys.argv[1:3]  # what Python tries: here files, no folder
from hfspeech.cli import main
code = main(sys.argv[3:])
sys.exit(code)
"""


def run_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.mark.parametrize("args", [["train", "--data_dir", "data", "--output_dir", "run"], ["train", "--help"],
                                  ["export", "run"]])
def test_no_writable_temporary_folder_is_one_line(tmp_path, args):
    """A read-only /tmp with the working folder / ended train, evaluate, export, stage, push, pretrained, serve ...
    in a 66-line traceback (`No usable temporary directory found`, importing dill through torch/datasets); so did
    `train --help`, whose flags come from transformers."""
    tmpdir, cwd = tmp_path / "tmpdir-file", tmp_path / "cwd-file"
    tmpdir.write_text("not a folder")
    cwd.write_text("not a folder")
    done = run_python(NO_SCRATCH, str(tmpdir), str(cwd), *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"error: no writable temporary folder (tried {tmpdir} and the working folder {cwd}): "
                           "set TMPDIR to a folder this user may write\n")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["pretrained", "--list"], ["pretrained"],
                                  ["predict", "--help"], ["demo-data", "--help"]])
def test_what_needs_no_temporary_folder_runs_without_one(tmp_path, args):
    """Asked before every command at first, the folder refused `pretrained --list`, `demo-data` and most `--help`
    pages, which worked without it (reviewer R2)."""
    tmpdir = tmp_path / "tmpdir-file"
    tmpdir.write_text("not a folder")
    done = run_python(NO_SCRATCH, str(tmpdir), str(tmpdir), *args)
    assert done.returncode == 0 and done.stdout and done.stderr == "", done.stderr


def test_a_full_temporary_folder_is_named_full(tmp_path, monkeypatch):
    """Python skips a full /tmp as it skips an unwritable one; making room is the way out there."""
    from hfspeech.temporary_folder import no_temporary_folder

    full, unwritable, read_only = tmp_path / "full", tmp_path / "file", tmp_path / "squashfs"
    full.mkdir()
    read_only.mkdir()
    unwritable.write_text("")

    def usage(path):  # a full tmpfs; a read-only squashfs (an Apptainer image) also has no free block (reviewer R3)
        return type("Vfs", (), {"f_blocks": 99, "f_bavail": 0 if path in (str(full), str(read_only)) else 9,
                                "f_flag": os.ST_RDONLY if path == str(read_only) else 0})()

    monkeypatch.setattr(os, "statvfs", usage)
    monkeypatch.setattr("tempfile._candidate_tempdir_list", lambda: [str(full), str(read_only), str(unwritable)])
    said = no_temporary_folder(FileNotFoundError(2, "No usable temporary directory found in [...]"))
    assert str(said) == (f"no writable temporary folder (tried {full} (full), {read_only} and the working folder "
                         f"{unwritable}): set TMPDIR to a folder this user may write")
    assert no_temporary_folder(FileNotFoundError(2, "No such file or directory")) is None


@pytest.mark.parametrize("flags", [["--list"], ["--l"], []])  # argparse takes a prefix; no flag lists too
def test_the_pretrained_list_is_not_refused_without_a_home(no_home, capsys, flags):
    """The list needs no cache, yet it was refused with the no-home line before anything was printed."""
    code, out, err = run_cli_output(["pretrained", *flags], capsys)
    assert "whisper-tiny.en: " in out, (code, err)


def test_a_pretrained_checkpoint_without_a_home_is_refused_still(no_home, capsys):
    code, out, err = run_cli_output(["pretrained", "whisper-tiny.en"], capsys)
    assert (code, out) == (2, "") and err.startswith("error: no home folder to keep caches in"), err


PLOT = """
import sys
import numpy as np
from hfspeech.evaluation.report_plots import plot_confusion_matrix
plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["no", "yes"], sys.argv[1])
"""


def test_matplotlib_says_nothing_of_a_config_folder_it_cannot_write(tmp_path):
    """HOME read-only (or unset): two WARNING lines of ~300 characters about MPLCONFIGDIR in train's and evaluate's
    logs, raw on predict --timeline's stderr; matplotlib's own private temporary folder is safe."""
    home = tmp_path / "home-file"  # not a folder: not writable, for root too
    home.write_text("")
    env = {name: value for name, value in os.environ.items()
           if name not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    png = tmp_path / "matrix.png"
    done = subprocess.run([sys.executable, "-c", PLOT, str(png)], capture_output=True, text=True, timeout=120,
                          env={**env, "HOME": str(home)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert png.stat().st_size > 0


@pytest.fixture(scope="module")
def cnn_model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("cnn") / "cnn", "cnn", ["a", "b"], 0.5, n_mels=16,
                                conv_channels=[4, 8])


@pytest.fixture
def sessions_opened(monkeypatch) -> list[tuple[str, int]]:
    """(caller, intra-op setting) of each onnxruntime session created, whoever opens it (optimum's included)."""
    import traceback

    from onnxruntime import InferenceSession

    seen, create = [], InferenceSession._create_inference_session

    def observed(session, *args, **kwargs):
        create(session, *args, **kwargs)
        caller = next((frame.filename for frame in reversed(traceback.extract_stack()[:-1])
                       if "onnxruntime" not in frame.filename and not frame.filename.endswith("cpu_threads.py")), "?")
        seen.append((caller.split("site-packages/")[-1], session.get_session_options().intra_op_num_threads))
    monkeypatch.setattr(InferenceSession, "_create_inference_session", observed)
    return seen


def test_the_sessions_optimum_opens_in_an_export_run_on_the_threads_hfspeech_allows(cnn_model, tmp_path, monkeypatch,
                                                                                     sessions_opened):
    """optimum's export (fixing dynamic axes) and its `validate_model_outputs` opened their sessions at the host's
    cores (intra-op 0) under a 1-CPU quota or the user's OMP_NUM_THREADS=1, though hfspeech's own were held to it."""
    for name in (*cpu_threads.USER_THREAD_ENVS, cpu_threads.THREADS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    export_onnx(cnn_model, tmp_path / "onnx")
    callers = {caller for caller, _ in sessions_opened}
    assert {"optimum/exporters/onnx/base.py", "optimum/exporters/onnx/utils.py"} <= callers, callers
    assert {threads for _, threads in sessions_opened} == {cpu_threads.onnx_threads()}, sessions_opened
    sessions_opened.clear()
    monkeypatch.delenv("OMP_NUM_THREADS")
    with monkeypatch.context() as inside:
        inside.setattr(cpu_threads.os, "cpu_count", lambda: 1)  # nothing to cap: onnxruntime's default, as before
        export_onnx(cnn_model, tmp_path / "onnx2")
    assert {threads for _, threads in sessions_opened} == {0}, sessions_opened


def test_a_session_given_its_own_count_keeps_it_and_nothing_stays_swapped(monkeypatch, identity_onnx):
    import onnxruntime

    monkeypatch.delenv(cpu_threads.THREADS_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    original, model = onnxruntime.InferenceSession, identity_onnx
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    with cpu_threads.onnx_sessions_capped():
        chosen = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        default = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert chosen.get_session_options().intra_op_num_threads == 2
    assert default.get_session_options().intra_op_num_threads == cpu_threads.onnx_threads()
    assert onnxruntime.InferenceSession is original


def test_overlapping_capped_blocks_put_onnxruntimes_session_class_back(monkeypatch):
    """Two exports at once in one process (two threads): the second block took the first's subclass for
    onnxruntime's own and put it back for good (reviewer R2)."""
    import threading

    import onnxruntime

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    original, inside = onnxruntime.InferenceSession, []
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with cpu_threads.onnx_sessions_capped():
            first_in.set()
            second_in.wait(30)
        first_out.set()

    def second():  # in before the first ends, out after it
        first_in.wait(30)
        with cpu_threads.onnx_sessions_capped():
            second_in.set()
            first_out.wait(30)
            inside.append(onnxruntime.InferenceSession)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert inside and inside[0] is not original and issubclass(inside[0], original)
    assert onnxruntime.InferenceSession is original


def test_the_demo_says_the_datasets_cache_cannot_be_written_before_it_makes_its_data(tmp_path):
    """A read-only HOME (a pod's): the demo generated its keywords (17 s of espeak-ng) before training said it."""
    cache = tmp_path / "cache-file"  # not a folder: not writable, for root too
    cache.write_text("")
    done = subprocess.run([sys.executable, "-m", "hfspeech.cli", "demo", "--output_dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_DATASETS_CACHE": str(cache)})
    assert done.returncode == 2 and done.stderr.startswith(f"error: {cache}: cannot write the demo's decoded audio"), \
        done.stderr
    assert len(done.stderr.splitlines()) == 1 and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("model", ["run", "torchscript/model.torchscript.pt"])
def test_predicting_without_a_temporary_folder_is_the_same_line(tmp_path, model):
    """predict printed the raw `[Errno 2] No usable temporary directory ...`, and a TorchScript model was called
    "corrupt, torch.jit.load cannot load it": torch is first imported while the model loads (reviewer R3)."""
    import shutil

    import numpy as np
    import soundfile as sf

    run = save_random_baseline(tmp_path / "run", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    (tmp_path / "torchscript").mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(run / name, tmp_path / "torchscript" / name)
    (tmp_path / "torchscript" / "model.torchscript.pt").write_bytes(b"not read: torch's import fails first")
    sf.write(tmp_path / "clip.wav", np.zeros(8000, np.float32), 16000)
    tmpdir = tmp_path / "tmpdir-file"
    tmpdir.write_text("not a folder")
    done = run_python(NO_SCRATCH, str(tmpdir), str(tmpdir), "predict", str(tmp_path / model),
                      str(tmp_path / "clip.wav"))
    assert (done.returncode, done.stderr) == (2, f"error: no writable temporary folder (tried {tmpdir} and the "
                                                 f"working folder {tmpdir}): set TMPDIR to a folder this user may "
                                                 "write\n")
