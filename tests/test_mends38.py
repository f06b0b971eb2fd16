"""Mends of session 38 without a file of their own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hfspeech.errors import UsageError
from hfspeech.synthetic.spoken import _check_keywords

REPO = Path(__file__).resolve().parents[1]


def test_a_decomposed_keyword_is_read_as_its_composed_word():
    assert _check_keywords(["zoe\u0308", "no"]) == ["zo\u00eb", "no"]


def test_a_keyword_composed_and_decomposed_is_one_keyword_twice():
    with pytest.raises(UsageError, match="unique"):
        _check_keywords(["zo\u00eb", "zoe\u0308"])


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    from tests.conftest import save_random_baseline

    return save_random_baseline(tmp_path_factory.mktemp("cnn") / "run", "cnn", ["low", "high"], 0.5,
                                conv_channels=[4, 8], n_mels=16, max_length_seconds=0.5)


@pytest.mark.parametrize("command", [["export", "{run}", "--format", "onnx", "--output", "{out}"],
                                     ["stage", "{run}", "{out}"]])
def test_a_run_still_training_is_not_exported_or_staged(saved_run, tmp_path, command, capsys):
    """A resumed run holds its earlier model while it trains on: `stage` published it (rc 0, no word), and both read
    files `train` may rewrite meanwhile. Held by another process as `train` holds its --output_dir."""
    from hfspeech.cli import main as cli
    from tests.test_concurrent38 import hold, let_go

    argv = [word.format(run=saved_run, out=tmp_path / "out") for word in command]
    holder = hold(saved_run)
    try:
        assert cli(argv) == 2
    finally:
        let_go(holder)
    assert "a training run (or an average) is writing this folder now" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_request_cancelled_at_the_shutdown_timeout_is_answered_503_not_500():
    """Past --shutdown_timeout uvicorn cancels the requests still running: the CancelledError passed the middleware's
    `except Exception`, uvicorn answered 500 and logged a 45-line traceback, and the request was not counted (R2)."""
    import asyncio
    import json

    from hfspeech.serve.app import GuardMiddleware
    from hfspeech.serve.metrics import ServerMetrics

    async def route_still_running(scope, receive, send):
        raise asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")

    sent, metrics = [], ServerMetrics()

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(GuardMiddleware(route_still_running, metrics, None)(scope, receive, send))
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["kind"] == "shutting_down"
    assert metrics.registry.get_sample_value("hfspeech_errors_total", {"kind": "shutting_down"}) == 1


HOLDS_ITS_OWN_RUN = """
import sys
from hfspeech.folder_writers import being_written
from hfspeech.output_folders import held_alone
with held_alone(sys.argv[1], "in use"):
    print("another writer" if being_written(sys.argv[1]) else "its own")
"""


def mount_namespaces() -> bool:
    """Whether this process may make a private mount namespace (root with CAP_SYS_ADMIN: not Docker's default)."""
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-m", "true"],
                                                                  capture_output=True).returncode == 0


@pytest.mark.skipif(not mount_namespaces(), reason="needs a private mount namespace (to hide /proc/locks)")
def test_a_folder_this_process_holds_is_its_own_where_proc_locks_says_nothing(tmp_path):
    """Told apart by Linux's /proc/locks, this process's own hold counted as another writer's on macOS (no
    /proc/locks) and on btrfs (another device number there): every `train` of a baseline lost its TorchScript twin
    to "a training run is writing this folder now" (R2). /proc/locks hidden here as macOS has none."""
    (tmp_path / "run").mkdir()
    script = f"mount --bind /dev/null /proc/locks && exec {sys.executable} -c '{HOLDS_ITS_OWN_RUN}' {tmp_path / 'run'}"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == "its own", done.stderr


def test_predicting_a_run_being_retrained_says_it_is_the_earlier_model(saved_run, tmp_path, caplog):
    """`train --overwrite_output_dir` into a run: predict and evaluate served the model it held before without a
    word, while export refused (R2)."""
    import soundfile as sf
    import numpy as np

    from hfspeech.cli import main as cli
    from tests.test_concurrent38 import hold, let_go

    clip = tmp_path / "tone.wav"
    sf.write(clip, (0.3 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 440)).astype(np.float32), 16000)
    holder = hold(saved_run)
    try:
        assert cli(["predict", str(saved_run), str(clip)]) == 0
    finally:
        let_go(holder)
    assert f"note: {saved_run}: a training run (or an average) is writing this folder now" in caplog.text
