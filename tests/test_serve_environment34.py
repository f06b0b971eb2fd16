"""A server started from Python (a notebook, a script) leaves the process's environment as it found it: `run_server`
set HFSPEECH_HEADER_TIMEOUT and, with workers, the settings and PROMETHEUS_MULTIPROC_DIR (naming a folder it then
removed) for good, so every later server of that process read them."""

from __future__ import annotations

import os
from pathlib import Path

from hfspeech.serve.app import ServeSettings, run_server
from hfspeech.serve.connections import HEADER_TIMEOUT_ENV
from hfspeech.serve.environment import METRICS_DIR_ENV, set_for_workers
from hfspeech.serve.launcher import free_port


def test_a_server_that_ran_in_this_process_leaves_no_variable_behind(tmp_path, monkeypatch):
    monkeypatch.delenv(HEADER_TIMEOUT_ENV, raising=False)
    (tmp_path / "not-a-model").mkdir()
    why = run_server(ServeSettings(model=str(tmp_path / "not-a-model"), request_timeout=7.0), port=free_port(),
                     log_level="error")
    assert why  # the model did not load, so the one-process server stopped by itself
    assert HEADER_TIMEOUT_ENV not in os.environ


def test_the_workers_variables_last_the_block_and_an_earlier_value_comes_back(monkeypatch):
    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "12")
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    with set_for_workers({HEADER_TIMEOUT_ENV: "7.0"}):
        folder = Path(os.environ[METRICS_DIR_ENV])
        assert folder.is_dir() and os.environ[HEADER_TIMEOUT_ENV] == "7.0"
    assert os.environ[HEADER_TIMEOUT_ENV] == "12" and METRICS_DIR_ENV not in os.environ and not folder.exists()


def test_a_metrics_folder_the_user_chose_is_theirs(tmp_path, monkeypatch):
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    with set_for_workers({}):
        assert os.environ[METRICS_DIR_ENV] == str(tmp_path)
    assert os.environ[METRICS_DIR_ENV] == str(tmp_path) and tmp_path.is_dir()
