"""A run killed outright (SIGKILL, the OOM killer) while `datasets` decoded into the cache left its `tmpXXXXXXXX`
file in the cache folder for good (29 MB at 900 of 1,000 one-second clips). The next run that finds no live run
using the folder (`data.cache_users`: a shared lock each run holds there) now removes it; a live run's is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest

from conftest import write_tone_folder
from hfspeech.data import cache_users
from hfspeech.data.cache_users import LOCK_NAME, SWEEP_MARGIN, hold_cache_folder

# A run preparing argv[1] at 8 kHz, stopped at its argv[2]-th clip (0: never): "kill" (SIGKILL) or "hold" (waits on
# its stdin, alive, mid-decode, its `tmp*` file open).
PREPARING_RUN = """
import os, signal, sys
import hfspeech.data.prepare as prepare
from hfspeech.data.loading import load_audio_dataset

data_dir, stop_at, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_decode, decoded = prepare.decode_audio, [0]

def decode_audio(*args, **kwargs):
    decoded[0] += 1
    if decoded[0] == stop_at:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        print("decoding", flush=True)
        sys.stdin.read()
    return real_decode(*args, **kwargs)

prepare.decode_audio = decode_audio
prepare.prepare_dataset(load_audio_dataset(data_dir=data_dir), 8000)
print("prepared", flush=True)
"""


def preparing_run(data: Path, cache: Path, stop_at: int, how: str = "kill") -> subprocess.Popen:
    environment = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.Popen([sys.executable, "-c", PREPARING_RUN, str(data), str(stop_at), how], env=environment,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent)


def temporary_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("hfspeech-audiofolder/*/*/tmp*"))


def test_a_run_killed_while_decoding_leaves_a_tmp_file_that_the_next_run_removes(tmp_path):
    data, cache = write_tone_folder(tmp_path / "data", clips_per_class=40), tmp_path / "cache"
    killed = preparing_run(data, cache, stop_at=110)  # after the first written batch of 100 clips
    killed.communicate(timeout=120)
    assert killed.returncode == -9
    [left] = temporary_files(cache)
    assert left.stat().st_size > 0
    an_hour_ago = time.time() - SWEEP_MARGIN - 60  # untouched for the margin: a writer with no lock would have
    os.utime(left, (an_hour_ago, an_hour_ago))
    second = preparing_run(data, cache, stop_at=0)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0 and out.strip() == "prepared", err
    assert temporary_files(cache) == []
    assert "removed 1 temporary file(s)" in err and str(left.parent) in err
    assert len(list(left.parent.glob("cache-*.arrow"))) == 1  # the second run's decoded audio, renamed in


def test_a_live_runs_tmp_file_survives_another_runs_start_and_is_renamed_in(tmp_path):
    """The live run holds the folder's shared lock: the second run cannot take it alone, so it removes nothing,
    although the live run's file is older than its start."""
    data, cache = write_tone_folder(tmp_path / "data", clips_per_class=40), tmp_path / "cache"
    live = preparing_run(data, cache, stop_at=110, how="hold")
    try:
        assert live.stdout.readline().strip() == "decoding"
        [writing] = temporary_files(cache)
        second = preparing_run(data, cache, stop_at=0)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0 and "removed" not in err, err
        assert writing in temporary_files(cache)
    finally:
        out, err = live.communicate(timeout=120)
    assert live.returncode == 0 and out.strip() == "prepared", err
    assert temporary_files(cache) == []


def test_only_tempfiles_names_written_before_the_run_are_removed(tmp_path):
    """A `tmp*` file newer than the run (another program's, writing now) and names `tempfile` does not make (the
    user's) are kept; so is a link, and its target."""
    from hfspeech.data.cache_users import remove_dead_runs_temporary_files

    started = time.time()
    old, new = tmp_path / "tmpabcd_123", tmp_path / "tmpefgh_456"
    others = [tmp_path / "tmp_notes.txt", tmp_path / "tmpABCDEFGH", tmp_path / "cache-0123456789abcdef.arrow"]
    for path in (old, new, *others):
        path.write_bytes(b"rows")
    for path in (old, *others):
        os.utime(path, (started - 60, started - 60))
    os.utime(new, (started + 1, started + 1))
    (tmp_path / "tmplink_789").symlink_to(others[0])
    assert remove_dead_runs_temporary_files(tmp_path, before=started) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["tmpefgh_456", "tmplink_789", *(path.name for path in others)])


def lock_descriptors() -> set[str]:
    """The lock files this process holds open (Linux: its descriptors' targets)."""
    targets = set()
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            targets.add(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            continue
    return {target for target in targets if target.endswith(LOCK_NAME)}


@pytest.fixture
def own_holds(monkeypatch):
    """A fresh `_held` (and set of users' folders) for the test, its descriptors closed after: the suite's own
    holds are kept, and no descriptor is left open."""
    held = OrderedDict()
    monkeypatch.setattr(cache_users, "_held", held)
    monkeypatch.setattr(cache_users, "_users_own", set())
    yield held
    for handle in held.values():
        if handle is not None:
            os.close(handle)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_a_long_lived_process_holds_at_most_max_held_folders_the_latest_used(tmp_path, own_holds):
    """A notebook or the test suite uses a new cache folder per data set: one descriptor each, for ever, ran into
    the limit on open files (256 on macOS)."""
    from hfspeech.data.cache_users import MAX_HELD

    folders = [tmp_path / f"cache{i}" for i in range(MAX_HELD + 5)]
    for folder in folders:
        hold_cache_folder(folder)
        hold_cache_folder(folders[0])  # used again each time: kept
    held = {str(path) for path in lock_descriptors() if str(tmp_path) in path}
    assert len(held) == MAX_HELD
    assert str(folders[0] / LOCK_NAME) in held and str(folders[-1] / LOCK_NAME) in held
    assert str(folders[1] / LOCK_NAME) not in held


def test_a_tmp_file_older_than_the_run_but_written_within_the_margin_is_kept(tmp_path, monkeypatch):
    """A user's own `datasets` script (no hfspeech lock) touches its `tmp*` file once per writer batch: it lost the
    file 3 s after another process swept, being older than that process."""
    now = time.time()
    monkeypatch.setattr(cache_users, "RUN_STARTED", now)
    writing, dead = tmp_path / "tmpabcd_123", tmp_path / "tmpefgh_456"
    for path, age in ((writing, 60), (dead, SWEEP_MARGIN + 60)):
        path.write_bytes(b"rows")
        os.utime(path, (now - age, now - age))
    assert cache_users.remove_dead_runs_temporary_files(tmp_path) == 1
    assert [path.name for path in tmp_path.iterdir()] == [writing.name]


def holds_shared_lock(folder: Path) -> bool:
    """Whether some descriptor holds `folder`'s lock: another open of the file cannot take it exclusively."""
    import fcntl

    other = os.open(folder / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(other)


def test_a_failing_exclusive_try_still_holds_the_shared_lock(tmp_path, monkeypatch, own_holds):
    """NFS refuses an exclusive flock on a file opened read-only (`lock_taken` None): the run closed the file and
    held nothing, so another run swept its live `tmp*` file."""
    monkeypatch.setattr(cache_users, "lock_taken", lambda handle: None)
    hold_cache_folder(tmp_path)
    assert holds_shared_lock(tmp_path)


def test_the_lock_file_is_made_writable_by_its_group_whatever_the_umask(tmp_path, own_holds):
    """Made 0644 under the usual umask, another user of a group-shared cache opened it read-only: no exclusive lock
    over NFS."""
    previous = os.umask(0o022)
    try:
        hold_cache_folder(tmp_path / "cache")
    finally:
        os.umask(previous)
    assert (tmp_path / "cache" / LOCK_NAME).stat().st_mode & 0o777 == 0o664


def test_a_stopped_sweeper_does_not_stall_the_next_run(tmp_path, monkeypatch, own_holds, caplog):
    """A run stopped (Ctrl-Z, a suspended SLURM job) while it held the exclusive lock kept the next run waiting on
    the shared lock for ever."""
    import fcntl
    import threading

    monkeypatch.setattr(cache_users, "SHARED_LOCK_WAIT", 0.2)
    stopped = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(stopped, fcntl.LOCK_EX)
    starting = threading.Thread(target=hold_cache_folder, args=(tmp_path,), daemon=True)
    try:
        starting.start()
        starting.join(timeout=20)
        stalled = starting.is_alive()
    finally:
        os.close(stopped)
        starting.join(timeout=20)
    assert not stalled
    assert own_holds[os.path.realpath(tmp_path)] is None
    assert "locked by another run (stopped?)" in caplog.text


def test_a_users_saved_dataset_folder_is_neither_locked_nor_swept(tmp_path, own_holds):
    """A user's own script maps into their `save_to_disk` folder without hfspeech's lock: its `tmp*` file was
    removed under it. A Hub dataset's folder in the datasets cache keeps the hold."""
    from datasets import Dataset, DatasetDict

    from hfspeech.data.loading import load_audio_dataset

    saved = tmp_path / "saved"
    (tmp_path / "a.wav").write_bytes(b"RIFF")  # a split none of whose files exists is refused at load
    DatasetDict({"train": Dataset.from_dict({"audio": [str(tmp_path / "a.wav")], "label": ["low"]})}).save_to_disk(
        str(saved))
    theirs = saved / "train" / "tmpabcd_123"
    theirs.write_bytes(b"rows")
    long_ago = time.time() - SWEEP_MARGIN - 60
    os.utime(theirs, (long_ago, long_ago))
    load_audio_dataset(dataset_name=str(saved))
    hold_cache_folder(saved / "train")  # as `prepare_dataset` holds where it maps
    assert theirs.exists() and not (saved / "train" / LOCK_NAME).exists()
