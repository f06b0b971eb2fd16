"""A live `--workers` server's metrics folder is never swept, whatever pids say (reviewer R2).

The sweep judged a folder by the pids in its names; across pid namespaces (two containers sharing /tmp, a TMPDIR
on NFS used by several hosts) a live server's pids look dead, so its folder was removed and its /metrics failed
for good, and a container's pid-1 supervisor looked alive forever. Now a folder is alive while anyone holds a
shared flock on its `.hfspeech-alive.lock`: here the other namespace's server is another open file description,
or another process, holding it. Also: a folder removed under a running app answers /metrics in the server's
error JSON, and the page's top-k box starts empty (the server's --top_k)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

fcntl = pytest.importorskip("fcntl")  # (none on Windows: the sweep is off there)

from hfspeech.serve.app import ServeSettings, create_app, run_server
from hfspeech.serve.environment import METRICS_DIR_ENV, set_for_workers
from hfspeech.errors import UsageError
from hfspeech.serve.metrics_folder import ALIVE_FILE, folder_prefix, remove_orphaned_folders

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="the sweep runs where owners can be told apart")


def a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def folder_with_lock_file(parent: Path, pid: int) -> Path:
    """A folder as a server in another pid namespace made it: named by a pid that means nothing here."""
    folder = Path(tempfile.mkdtemp(prefix=folder_prefix(pid), dir=parent))
    (folder / ALIVE_FILE).write_bytes(b"")
    (folder / f"counter_{pid}.db").write_bytes(b"")
    return folder


def test_a_folder_held_alive_is_kept_whatever_its_pids_say_and_removed_once_let_go(tmp_path):
    held, unheld, pid_one = (folder_with_lock_file(tmp_path, pid) for pid in (a_dead_pid(), a_dead_pid(), 1))
    with open(held / ALIVE_FILE, "rb") as other_server:  # its own open file description, as another process's
        fcntl.flock(other_server, fcntl.LOCK_SH)
        assert sorted(remove_orphaned_folders(str(tmp_path))) == sorted([unheld.name, pid_one.name])
        assert held.is_dir() and not unheld.exists() and not pid_one.exists()  # pid 1: a container's supervisor
    assert remove_orphaned_folders(str(tmp_path)) == [held.name] and not held.exists()


@contextlib.contextmanager
def worker_holding(folder: Path):
    """A worker process holding `folder` alive (`keep_alive_while_this_process_lives`) until the block ends."""
    code = ("import sys; from hfspeech.serve.metrics_folder import keep_alive_while_this_process_lives as keep\n"
            "keep(sys.argv[1]); print('held', flush=True); sys.stdin.read()")
    worker = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        assert worker.stdout.readline() == "held\n"
        yield
    finally:
        worker.communicate("", timeout=30)


def test_a_worker_serving_on_after_its_supervisor_was_killed_keeps_the_folder(tmp_path):
    folder = folder_with_lock_file(tmp_path, a_dead_pid())
    with worker_holding(folder):
        assert remove_orphaned_folders(str(tmp_path)) == [] and folder.is_dir()
    assert remove_orphaned_folders(str(tmp_path)) == [folder.name] and not folder.exists()


def test_a_servers_own_folder_is_held_alive_from_the_moment_it_bears_its_name(tmp_path, monkeypatch):
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with set_for_workers({}, workers=2):
        folder = Path(os.environ[METRICS_DIR_ENV])
        assert folder.parent == tmp_path and folder.name.startswith(folder_prefix(os.getpid()))
        with open(folder / ALIVE_FILE, "rb") as sweeper, pytest.raises(BlockingIOError):
            fcntl.flock(sweeper, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert remove_orphaned_folders(str(tmp_path)) == [] and folder.is_dir()
    assert list(tmp_path.iterdir()) == []  # removed, the folder it was made under too


def test_a_metrics_folder_removed_under_a_running_app_is_one_error_line_not_a_traceback(tmp_path, monkeypatch,
                                                                                       caplog):
    folder = Path(tempfile.mkdtemp(prefix=folder_prefix(os.getpid()), dir=tmp_path))
    monkeypatch.setenv(METRICS_DIR_ENV, str(folder))
    (tmp_path / "model").mkdir()  # no model needed: /metrics answers while it fails to load
    with TestClient(create_app(ServeSettings(model=str(tmp_path / "model")))) as client:
        assert client.get("/metrics").status_code == 200
        shutil.rmtree(folder)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="hfspeech.serve"):
            answer = client.get("/metrics")
    assert answer.status_code == 500 and answer.json()["kind"] == "metrics_folder_missing"
    assert str(tmp_path) not in answer.text and "\n" not in answer.json()["error"]
    records = [record for record in caplog.records if record.name == "hfspeech.serve"]
    assert len(records) == 1 and records[0].exc_info is None and str(folder) in records[0].getMessage()


class TopKBox(HTMLParser):
    def handle_starttag(self, tag, attrs):
        if dict(attrs).get("id") == "top-k":
            self.attributes = dict(attrs)


def test_the_pages_top_k_box_starts_empty_so_the_servers_top_k_applies(tmp_path):
    (tmp_path / "model").mkdir()
    with TestClient(create_app(ServeSettings(model=str(tmp_path / "model")))) as client:
        box = TopKBox()
        box.feed(client.get("/").text)
    assert "value" not in box.attributes and box.attributes["placeholder"] == "default"


def test_a_worker_restarted_after_its_folder_was_removed_makes_it_again_and_starts(tmp_path):
    """`rm -rf` of the folder (a cleaner of /tmp), then a worker restarted: it died opening its metric files there,
    and uvicorn started it again, forever (reviewer R4)."""
    folder = folder_with_lock_file(tmp_path, a_dead_pid())
    shutil.rmtree(folder)
    code = ("import sys; from hfspeech.serve.metrics_folder import keep_alive_while_this_process_lives as keep\n"
            "keep(sys.argv[1]); from hfspeech.serve.metrics import ServerMetrics; ServerMetrics(); print('started')")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                          env={**os.environ, METRICS_DIR_ENV: str(folder)}, timeout=120)
    assert done.stdout.strip() == "started", done.stderr[-2000:]
    assert (folder / ALIVE_FILE).is_file()


def test_a_users_metrics_folder_that_is_gone_is_one_line_before_any_worker_starts(tmp_path, monkeypatch):
    """Each worker died with a traceback, and the supervisor hung on its defunct workers (reviewer R4)."""
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path / "nosuch"))
    with pytest.raises(UsageError, match=f"^{METRICS_DIR_ENV}={tmp_path / 'nosuch'}: no such folder; make it"):
        run_server(ServeSettings(model=str(tmp_path / "run")), workers=2)
