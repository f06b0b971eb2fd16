"""A `--workers` server's metrics folder over weeks and through kills (session 40).

- Its `.hfspeech-alive.lock` was never written after creation: systemd-tmpfiles (10 days for /tmp) removed it,
  and the whole folder of a server idle that long; liveness then fell back to pids. Now the supervisor and each
  worker hold a shared flock on the folder itself, which systemd-tmpfiles honours and the sweep tests first, and
  each merge touches the folder's files for cleaners that honour no lock (tmpwatch).
- A supervisor killed between mkdtemp and the rename left its `.hfspeech-metrics-new-*` folder for good.
- A worker killed between writing `*_dead.db` and removing the dead worker's file doubled that worker's counts.

Folders in tmp_path, held by other open file descriptions (another server, as the kernel sees it) or by a real
process; metric files written by real processes that then exit; the real `systemd-tmpfiles --clean` where there
is one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

fcntl = pytest.importorskip("fcntl")  # (none on Windows: neither locks nor the sweep there)

from test_serve_alive39 import a_dead_pid, worker_holding  # noqa: E402 (after the skip: it needs fcntl too)

from hfspeech.serve.environment import METRICS_DIR_ENV, set_for_workers
from hfspeech.serve.metrics_folder import (ALIVE_FILE, STARTING_PREFIX, dead_workers_merged, folder_prefix,
                                           remove_orphaned_folders)

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="the sweep runs where owners can be told apart")
TWENTY_DAYS = 20 * 86400


def folder_with_lock_file(parent: Path, pid: int) -> Path:
    """A folder as a server in another pid namespace made it: named by a pid that means nothing here."""
    folder = Path(tempfile.mkdtemp(prefix=folder_prefix(pid), dir=parent))
    (folder / ALIVE_FILE).write_bytes(b"")
    return folder


def aged(root: Path, seconds: float) -> None:
    """Every file and folder under `root` (not `root` itself) last read and written `seconds` ago."""
    then = time.time() - seconds
    for path in [*root.rglob("*")]:
        os.utime(path, (then, then), follow_symlinks=False)


def test_systemd_tmpfiles_ages_out_a_dead_servers_folder_and_spares_a_live_ones(tmp_path, monkeypatch):
    tmpfiles = shutil.which("systemd-tmpfiles")
    if tmpfiles is None:
        pytest.skip("no systemd-tmpfiles here")
    root = tmp_path / "tmp"
    root.mkdir()
    (tmp_path / "age.conf").write_text(f"d {root} - - - mM:1s -\n")  # by mtime only: a test cannot set ctimes
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    dead = folder_with_lock_file(root, a_dead_pid())
    with set_for_workers({}, workers=2):
        live = Path(os.environ[METRICS_DIR_ENV])
        (live / f"counter_{os.getpid()}.db").write_bytes(b"")  # a worker's, idle for as long
        aged(root, TWENTY_DAYS)
        done = subprocess.run([tmpfiles, "--clean", str(tmp_path / "age.conf")], capture_output=True, text=True)
        if dead.exists():
            pytest.skip(f"this systemd-tmpfiles aged nothing out: {done.stderr.strip()[-300:]}")
        assert (live / ALIVE_FILE).is_file() and (live / f"counter_{os.getpid()}.db").is_file()  # whole
        assert remove_orphaned_folders(str(root)) == []


def test_a_servers_folder_itself_is_locked_as_systemd_tmpfiles_checks_it(tmp_path, monkeypatch):
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with set_for_workers({}, workers=2):
        descriptor = os.open(os.environ[METRICS_DIR_ENV], os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):  # what systemd-tmpfiles' dir_cleanup tries before aging it
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)


def test_a_live_workers_folder_whose_alive_file_a_cleaner_removed_is_not_judged_by_pids(tmp_path):
    folder = folder_with_lock_file(tmp_path, a_dead_pid())  # its supervisor: in another pid namespace, or killed
    with worker_holding(folder):
        (folder / ALIVE_FILE).unlink()  # tmpwatch, or a systemd-tmpfiles before the folder was locked
        (folder / f"counter_{a_dead_pid()}.db").write_bytes(b"")  # pids, all dead to this namespace
        assert remove_orphaned_folders(str(tmp_path)) == [] and folder.is_dir()
    assert remove_orphaned_folders(str(tmp_path)) == [folder.name]


def test_a_merge_touches_the_files_that_nothing_else_writes(tmp_path):
    """The lock files, the merged totals and an idle live worker's counts (reviewer R1: tmpwatch aged those out)."""
    folder = folder_with_lock_file(tmp_path, os.getpid())
    (folder / "counter_dead.db").write_bytes(b"")
    (folder / f"counter_{os.getpid()}.db").write_bytes(b"")  # a live worker: not merged, not written meanwhile
    dead_workers_merged(folder)  # (makes the merge lock)
    aged(folder, TWENTY_DAYS)
    dead_workers_merged(folder)  # a scrape, or a worker starting
    for name in (ALIVE_FILE, ".hfspeech-merge.lock", "counter_dead.db", f"counter_{os.getpid()}.db"):
        times = (folder / name).stat()
        assert time.time() - times.st_mtime < TWENTY_DAYS / 2 and time.time() - times.st_atime < TWENTY_DAYS / 2


def starting_folder(parent: Path, alive_file: str = "") -> Path:
    folder = Path(tempfile.mkdtemp(prefix=STARTING_PREFIX, dir=parent))
    if alive_file:
        (folder / alive_file).write_bytes(b"")
    return folder


def test_half_made_folders_of_killed_supervisors_are_swept_and_one_being_made_is_not(tmp_path):
    from hfspeech.serve.metrics_folder import STARTING_GRACE_SECONDS

    killed_before_its_file, killed_before_its_rename = starting_folder(tmp_path), starting_folder(tmp_path, ALIVE_FILE)
    just_made, file_not_yet_locked = starting_folder(tmp_path), starting_folder(tmp_path, ALIVE_FILE)
    held_file, held_folder = starting_folder(tmp_path, ALIVE_FILE), starting_folder(tmp_path)
    aged(tmp_path, STARTING_GRACE_SECONDS + 60)  # all left long ago, but for the two being made now
    for fresh in (just_made, file_not_yet_locked):
        os.utime(fresh)
    with open(held_file / ALIVE_FILE, "rb") as other_server:  # its own open file description
        fcntl.flock(other_server, fcntl.LOCK_SH)
        descriptor = os.open(held_folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            removed = remove_orphaned_folders(str(tmp_path))
        finally:
            os.close(descriptor)
    assert sorted(removed) == sorted([killed_before_its_file.name, killed_before_its_rename.name])
    assert all(folder.is_dir() for folder in (just_made, file_not_yet_locked, held_file, held_folder))


@pytest.mark.parametrize("folder_locks", ["local", "none, as across NFS hosts"])
def test_a_sweep_at_any_moment_of_a_folders_making_leaves_it_alone(tmp_path, monkeypatch, folder_locks):
    """Another server's sweep, run in each window of `new_folder_kept_alive`: just after mkdtemp, and with the
    alive file made and not yet locked."""
    from hfspeech.serve import metrics_folder

    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    real_mkdtemp, real_lock, swept = tempfile.mkdtemp, metrics_folder.shared_lock_on, []

    def made_then_swept(*args, **kwargs):
        made = real_mkdtemp(*args, **kwargs)
        swept.append(remove_orphaned_folders(str(tmp_path)))
        return made

    def swept_then_locked(path, create):
        if create:
            path.touch()
        swept.append(remove_orphaned_folders(str(tmp_path)))
        return real_lock(path, create)

    monkeypatch.setattr(tempfile, "mkdtemp", made_then_swept)
    monkeypatch.setattr(metrics_folder, "shared_lock_on", swept_then_locked)
    if folder_locks != "local":
        monkeypatch.setattr(metrics_folder, "shared_lock_on_folder", lambda folder: None)
    with set_for_workers({}, workers=2):
        folder = Path(os.environ[METRICS_DIR_ENV])
        assert (folder / ALIVE_FILE).is_file() and folder.name.startswith(folder_prefix(os.getpid()))
        assert remove_orphaned_folders(str(tmp_path)) == []
    assert swept == [[], []] and list(tmp_path.iterdir()) == []


def written_by_a_process_that_exits(folder: Path, requests: int) -> None:
    """What a worker writes in prometheus_client's multiprocess mode, by a real process that then ends."""
    code = ("from hfspeech.serve.metrics import ServerMetrics; m = ServerMetrics()\n"
            f"for _ in range({requests}): m.observe_request('/', 200, 0.25)\n"  # sums exact in any order
            "m.errors.labels('bad_json').inc(); m.batch_size.observe(3)")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, METRICS_DIR_ENV: str(folder)}, check=True,
                   cwd=Path(__file__).parents[1])


def scraped(folder: Path) -> list[str]:
    """prometheus_client's own sum of the folder's files, as they are."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return sorted(generate_latest(registry).decode().splitlines())


@pytest.fixture(scope="module")
def dead_workers(tmp_path_factory) -> Path:
    """A server's folder: one dead worker already merged, two more dead since, their files still there."""
    folder = Path(tempfile.mkdtemp(prefix=folder_prefix(os.getpid()), dir=tmp_path_factory.mktemp("workers")))
    written_by_a_process_that_exits(folder, 1)
    dead_workers_merged(folder)
    written_by_a_process_that_exits(folder, 2)
    written_by_a_process_that_exits(folder, 4)
    assert len(list(folder.glob("*.db"))) == 6
    return folder


def merge_killed(folder: Path, at: str) -> None:
    """A merge run piece by piece (`metrics_merge.merge_dead_files`), stopped where a kill would stop it."""
    from hfspeech.serve import metrics_merge as merge

    paths = [path for paths in merge.dead_files(folder).values() for path in paths]
    if at == "in the totals, one type written":
        merge.next_totals_written(folder, [path for path in paths if path.name.startswith("counter_")])
        return
    merged = merge.next_totals_written(folder, paths)
    if at == "in the totals, one half written":
        Path(f"{folder / 'histogram_dead.db'}{merge.NEXT}").write_bytes(b"\x01\x02")
    if at.startswith("in the totals"):
        return
    merge.committed(folder, merged)
    if at == "in the renames":
        os.replace(f"{folder / 'counter_dead.db'}{merge.NEXT}", folder / "counter_dead.db")
    if at in ("in the renames", "at the commit"):
        return
    merge.totals_installed(folder)
    if at == "in the removals":
        merged[0].unlink()
    if at in ("in the removals", "at the renames' end"):
        return
    for path in merged:
        path.unlink()


@pytest.mark.parametrize("at", ["in the totals, one type written", "in the totals, one half written",
                                "at the commit", "in the renames", "at the renames' end", "in the removals",
                                "before the journal's removal"])
def test_a_merge_killed_at_any_point_then_merged_again_keeps_every_count_once(dead_workers, tmp_path, at):
    folder = tmp_path / dead_workers.name
    shutil.copytree(dead_workers, folder)
    expected = scraped(folder)
    assert 'hfspeech_requests_total{route="/",status="200"} 7.0' in expected
    merge_killed(folder, at)
    dead_workers_merged(folder)  # the next scrape, or the next worker to start
    assert scraped(folder) == expected
    assert sorted(path.name for path in folder.iterdir()) == [".hfspeech-merge.lock", "counter_dead.db",
                                                              "histogram_dead.db"]  # nothing half done is left
