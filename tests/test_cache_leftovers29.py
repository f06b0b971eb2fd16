"""The caches saved whole (`data.whole_folders.save_whole`: the audio folder's listing, the teacher logits) are
written in a locked scratch folder beside the cache. A run killed outright while saving left its `.NAME.partial-PID`
(and `.NAME.old-PID`, a damaged cache set aside) for ever; the next save of the same cache now removes them, and
keeps a live run's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A run saving a 300-row cache into argv[1], stopped (argv[3]: "kill", SIGKILL; "hold", waiting on its stdin) once
# its copy is saved beside the cache (argv[2]: "saved") or once the damaged cache there is set aside ("set aside").
SAVING_RUN = """
import os, signal, sys
from datasets import Dataset
from hfspeech.data.whole_folders import save_whole

folder, stop_at, how = sys.argv[1:4]
real_save, real_replace = Dataset.save_to_disk, os.replace

def stop():
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("saving", flush=True)
    sys.stdin.read()

def save_to_disk(self, path, **kwargs):
    real_save(self, path, **kwargs)
    if stop_at == "saved":
        stop()

def replace(source, target):
    real_replace(source, target)
    if stop_at == "set aside" and str(source) == folder:
        stop()

Dataset.save_to_disk, os.replace = save_to_disk, replace
save_whole(Dataset.from_dict({"x": list(range(300))}), folder)
"""


def saving_run(folder: Path, stop_at: str, how: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SAVING_RUN, str(folder), stop_at, how], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def damaged_cache(folder: Path) -> None:
    """What a disk that filled while the cache was written in place left, an hour ago."""
    folder.mkdir()
    (folder / "dataset_info.json").write_text("")
    os.utime(folder, (os.path.getmtime(folder) - 3600,) * 2)


@pytest.mark.parametrize("stop_at", ["saved", "set aside"])
def test_a_save_killed_outright_leaves_folders_that_the_next_save_of_the_cache_removes(tmp_path, stop_at):
    from datasets import Dataset, load_from_disk

    from hfspeech.data.whole_folders import save_whole

    folder = tmp_path / "key"
    if stop_at == "set aside":
        damaged_cache(folder)
    killed = saving_run(folder, stop_at, "kill")
    killed.communicate(timeout=60)
    assert killed.returncode == -9
    left = [path.name for path in tmp_path.iterdir() if path.name != "key"]
    assert left and all(name.startswith(".key") for name in left)  # what the kill left: the copy, the damaged cache
    save_whole(Dataset.from_dict({"x": [1, 2]}), folder)
    assert [path.name for path in tmp_path.iterdir()] == ["key"]
    assert load_from_disk(str(folder))["x"] == [1, 2]


def test_a_save_removes_a_killed_runs_leftover_keeps_a_live_runs_and_the_live_run_keeps_its_copy(tmp_path):
    """The live run saved first and is still renaming in (its scratch folder locked): this save removes only the
    killed run's folder; the live run then finds this save's copy in place, newer than its start, and keeps it."""
    from datasets import Dataset, load_from_disk

    from hfspeech.data.whole_folders import save_whole

    folder = tmp_path / "key"
    live = saving_run(folder, "saved", "hold")
    try:
        assert live.stdout.readline().strip() == "saving"
        live_scratch = [path.name for path in tmp_path.iterdir()]
        (tmp_path / ".key-partial-killed_0" / "key").mkdir(parents=True)  # a killed run's, `locked_scratch`'s name
        (tmp_path / ".key-partial-killed_0" / "key" / "data-00000-of-00001.arrow").write_bytes(b"half a cache")
        save_whole(Dataset.from_dict({"x": [1, 2]}), folder)
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*live_scratch, "key"])
        ours = (folder / "state.json").stat().st_ino
    finally:
        live.communicate(timeout=60)
    assert live.returncode == 0
    assert [path.name for path in tmp_path.iterdir()] == ["key"] and (folder / "state.json").stat().st_ino == ours
    assert load_from_disk(str(folder))["x"] == [1, 2]


def test_a_dead_runs_leftovers_of_the_old_names_are_removed_and_a_live_ones_kept(tmp_path):
    """Before the locked scratch folders a killed save left `.NAME.partial-PID` / `.NAME.old-PID`, which nothing
    removed; now the next save does, where that process is gone."""
    from datasets import Dataset

    from hfspeech.data.whole_folders import save_whole

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a process that has ended: its number is free
    dead = [tmp_path / f".key.partial-{gone}", tmp_path / f".key.old-{gone}"]
    live = tmp_path / f".key.partial-{os.getpid()}"
    for leftover in [*dead, live]:
        leftover.mkdir()
    save_whole(Dataset.from_dict({"x": [1, 2]}), tmp_path / "key")
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [live.name, "key"]


def test_a_copy_saved_before_this_save_looked_but_renamed_in_after_it_is_kept(tmp_path):
    """Another run's copy, finished writing before this save found the cache missing (`started`), renamed in after:
    its folder's mtime was its last write inside, older than `started`, so this save took it for a damaged cache
    and deleted it, maybe under a reader. Its renaming in counts now."""
    import time

    from hfspeech.data.whole_folders import _put_in_place

    others, mine, folder = tmp_path / "others", tmp_path / "mine", tmp_path / "key"
    for copy in (others, mine):
        copy.mkdir()
        (copy / "made_by").write_text(copy.name)
    written = time.time() - 100
    os.utime(others, (written, written))  # its last write inside, before this save looked
    _put_in_place(others, folder, written, tmp_path / "aside-other")  # the other run renames it in
    _put_in_place(mine, folder, written + 50, tmp_path / "aside-mine")  # this save, which looked after it wrote
    assert (folder / "made_by").read_text() == "others"


def test_a_run_killed_between_its_renames_through_a_link_has_the_earlier_output_put_back(tmp_path):
    """Killed after the link's target was set aside, the link pointed at nothing: the next run looked for scratch
    folders beside the link, not the target, and the earlier output stayed stranded (every later run failed)."""
    from hfspeech.output_folders import SET_ASIDE, remove_leftover_scratch

    (tmp_path / "home").mkdir()
    scratch = tmp_path / "data" / ".out-partial-abcd1234"
    (scratch / SET_ASIDE).mkdir(parents=True)
    (scratch / SET_ASIDE / "w").write_text("earlier")
    (scratch / "out").mkdir()  # the new output, never renamed in
    (tmp_path / "home" / "out").symlink_to(tmp_path / "data" / "out")
    remove_leftover_scratch(tmp_path / "home" / "out")
    assert (tmp_path / "home" / "out" / "w").read_text() == "earlier"
    assert sorted(entry.name for entry in (tmp_path / "data").iterdir()) == ["out"]
