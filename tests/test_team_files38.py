"""A team sharing folders (audit UA, session 38): another user's unreadable weights are not "corrupt", a refusal
names whose folder it is and whom to ask, the scratch folders hfspeech makes take the umask's modes (a teammate's
run can sweep a killed one's, and says which it cannot), `stage` into another user's read-only folder is refused
before the work and never names a hidden file, and `serve` of another user's 0700 run is one plain line.

Root reads and writes any file, so the files here are made another user's (uid 65534, `nobody`) and the code runs
in a process where file modes bind: root's override of them dropped with `setpriv` (skipped where it cannot be, or
where this user may not give a file away), as alice meets bob's files.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import save_random_baseline
from tests.forked_python import ForkingPython

REPO = Path(__file__).resolve().parents[1]
WITHOUT_ROOTS_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
OTHER_UID = 65534


@pytest.fixture
def other_user() -> str:
    """The name of the user whose files these are (`OTHER_UID`), where a test can make files that user's."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or \
            subprocess.run([*WITHOUT_ROOTS_OVERRIDE, "true"]).returncode != 0:
        pytest.skip("needs root to give files away, and setpriv to drop root's override of file modes")
    try:
        return pwd.getpwuid(OTHER_UID).pw_name
    except KeyError:
        return str(OTHER_UID)


@pytest.fixture(scope="module")
def preloaded_bound_by_modes():
    """A Python bound by file modes as `run_bound_by_modes`'s, which imports export, stage and serve's model loading
    (torch, transformers: seconds) once and forks a fresh process for each snippet given to it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to give files away, and setpriv to drop root's override of file modes")
    with ForkingPython(WITHOUT_ROOTS_OVERRIDE, ["hfspeech.export.loading", "hfspeech.hub.stage",
                                                "hfspeech.output_staging", "hfspeech.serve.runner"]) as python:
        yield python


def given_away(path: Path, mode: int, group: int = OTHER_UID) -> Path:
    os.chown(path, OTHER_UID, group)
    path.chmod(mode)
    return path


def run_bound_by_modes(code: str, cwd: Path, preloaded: ForkingPython | None = None) -> subprocess.CompletedProcess:
    """Python `code` run by root without its override of file modes: as a user other than the files' owner. In a
    process of its own, forked from `preloaded` (`preloaded_bound_by_modes`) where given."""
    if preloaded is not None:
        done = preloaded.run(code, cwd)
    else:
        done = subprocess.run([*WITHOUT_ROOTS_OVERRIDE, sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_another_users_unreadable_weights_are_named_so_by_export_and_stage_not_called_corrupt(other_user, tmp_path,
                                                                                             preloaded_bound_by_modes):
    """safetensors says "No such file or directory" for a 0600 file of another user's: export said "corrupt weights,
    cannot be loaded (FileNotFoundError ...)" and stage "damaged, not readable safetensors"."""
    run = save_random_baseline(tmp_path / "run", "cnn", ["a", "b"], 0.02)
    given_away(run / "model.safetensors", 0o600)
    done = run_bound_by_modes(
        "from pathlib import Path\n"
        "from hfspeech.export.loading import ExportError, load_model, read_config\n"
        "from hfspeech.hub.stage import StageError, check_run\n"
        "try: load_model('run', read_config('run'))\n"
        "except ExportError as error: print(error)\n"
        "try: check_run(Path('run').resolve(), False)\n"
        "except StageError as error: print(error)\n", cwd=tmp_path, preloaded=preloaded_bound_by_modes)
    said = (f"cannot read model.safetensors (permission denied: {other_user}'s file, -rw-------, as a run copied in "
            f"keeps its owner's 0600 weights); ask {other_user} to make it readable (chmod a+r), or load it as "
            f"{other_user}")
    assert done.stdout.splitlines() == [f"run: {said}", f"{run}: {said}"]


def test_a_refused_write_names_the_owner_the_mode_and_whom_to_ask(other_user, tmp_path):
    """`--output export_bob: cannot write (Permission denied); make it writable` told alice nothing she could do:
    only bob may chmod bob's folder. Group-writable helps only a user in its group (root is in group 0)."""
    (tmp_path / "theirs").mkdir()
    given_away(tmp_path / "theirs", 0o755)
    (tmp_path / "shared").mkdir()
    given_away(tmp_path / "shared", 0o2755, group=os.getegid())
    (tmp_path / "rows.jsonl").write_text("{}\n")
    given_away(tmp_path / "rows.jsonl", 0o644)
    (tmp_path / "mine").mkdir(mode=0o555)
    done = run_bound_by_modes(
        "from hfspeech.errors import cannot_write\n"
        "from hfspeech.output_folders import not_writable\n"
        "print(not_writable('theirs/run'))\n"
        "print(not_writable('shared'))\n"
        "print(not_writable('mine'))\n"
        "try: open('rows.jsonl', 'a')\n"
        "except PermissionError as error: print(cannot_write('rows.jsonl', error, "
        "'make room, or give another --output file'))\n", cwd=tmp_path)
    (tmp_path / "mine").chmod(0o755)
    assert done.stdout.splitlines() == [
        f"cannot write in theirs (Permission denied: it belongs to {other_user}, drwxr-xr-x); ask {other_user} to let "
        "this user write there, or write elsewhere",
        f"cannot write (Permission denied: it belongs to {other_user}, drwxr-sr-x); ask {other_user} to make it "
        "group-writable (chmod -R g+w), or write elsewhere",
        "cannot write (Permission denied); make it writable, or write elsewhere",  # this user's own: as before
        f"rows.jsonl: cannot write (Permission denied: it belongs to {other_user}, -rw-r--r--); ask {other_user} to "
        "let this user write there, or give another --output file"]


def test_a_scratch_folder_takes_the_umasks_mode_and_keeps_a_shared_folders_setgid(tmp_path):
    """`tempfile.mkdtemp` makes 0700 whatever the umask: in a team's setgid 2775 folder at umask 002 a killed run's
    scratch folder (and the earlier output it held) could not be swept by a teammate's next run."""
    from hfspeech.output_folders import locked_scratch

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2775)
    before = os.umask(0o002)
    try:
        scratch, handle = locked_scratch(shared / "export")
    finally:
        os.umask(before)
    if handle is not None:
        os.close(handle)
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o2775


def test_the_umask_is_read_without_being_set(monkeypatch):
    """`os.umask` is set-and-restore, process-wide: a thread making a file in between got the wrong mode."""
    from hfspeech.file_owners import process_umask

    before = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("the umask was set"))
        assert process_umask() == 0o027 or not os.path.exists("/proc/self/status")
    finally:
        monkeypatch.undo()
        os.umask(before)


def test_a_sweep_names_another_users_leftover_it_cannot_remove(other_user, tmp_path):
    """A killed run's scratch folder of another user's that this user may not empty, or not even look into (0700),
    was left without a word, for ever; a warning names it and its owner, once a process."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o777)
    dead, closed = tmp_path / "shared" / ".out-partial-abcd1234", tmp_path / "shared" / ".out-partial-efgh5678"
    for folder in (dead, closed):
        folder.mkdir()
        (folder / "out").mkdir()
        given_away(folder / "out", 0o755)
    given_away(dead, 0o755)
    given_away(closed, 0o700)
    done = run_bound_by_modes(
        "import logging; logging.basicConfig(format='%(message)s')\n"
        "from hfspeech.output_folders import remove_leftover_scratch\n"
        "remove_leftover_scratch('shared/out'); remove_leftover_scratch('shared/out')\n", cwd=tmp_path)
    assert done.stderr.splitlines() == [
        f"warning: {dead.relative_to(tmp_path)}: left by a killed run of {other_user}'s (drwxr-xr-x), and this user "
        f"may not remove it; ask {other_user} to remove it",
        f"warning: {closed.relative_to(tmp_path)}: left by a run of {other_user}'s (running, or killed) (drwx------), "
        f"and this user may not remove it; if no run of {other_user}'s writes there, ask {other_user} to remove it"]


def test_stage_into_another_users_read_only_folder_is_refused_before_the_work(other_user, tmp_path,
                                                                             preloaded_bound_by_modes):
    """It staged the whole repo, then stopped on `staged_bob/.config.json.hfspeech-new-aj45o_08: cannot write in
    staged_bob`, a hidden name docs/errors.md promises stage never shows; an output moved in entry by entry names
    its folder when the folder refuses the copies."""
    (tmp_path / "staged").mkdir()
    given_away(tmp_path / "staged", 0o555)
    done = run_bound_by_modes(
        "from pathlib import Path\n"
        "from hfspeech.errors import HfspeechError\n"
        "from hfspeech.hub.stage import check_destination\n"
        "from hfspeech.output_staging import written_beside\n"
        "try: check_destination(Path('staged'))\n"
        "except HfspeechError as error: print(type(error).__name__, error)\n"
        "try:\n"
        "    with written_beside(Path('staged')) as new:\n"
        "        new.mkdir(); (new / 'config.json').write_text('{}')\n"
        "except HfspeechError as error: print(type(error).__name__, error)\n", cwd=tmp_path,
        preloaded=preloaded_bound_by_modes)
    refusal = (f"staged: cannot write (Permission denied: it belongs to {other_user}, dr-xr-xr-x); ask {other_user} "
               "to let this user write there, or write elsewhere")
    assert done.stdout.splitlines() == [f"StageError {refusal}", f"FolderNotWritableError {refusal}"]
    assert os.listdir(tmp_path / "staged") == [] and sorted(os.listdir(tmp_path)) == ["staged"]


def test_serve_of_another_users_0700_run_is_the_line_predict_gives(other_user, tmp_path, preloaded_bound_by_modes):
    """`hfspeech serve run700` printed `error: PermissionError: [Errno 13] Permission denied: 'run700'`."""
    save_random_baseline(tmp_path / "run700", "cnn", ["a", "b"], 0.02)
    given_away(tmp_path / "run700", 0o700)
    done = run_bound_by_modes(
        "import asyncio, logging\n"
        "from hfspeech.serve.runner import ModelRunner\n"
        "logging.disable(logging.CRITICAL)\n"
        "runner = ModelRunner('run700')\n"
        "async def load():\n"
        "    runner.loaded = asyncio.Event(); runner._load(asyncio.get_running_loop())\n"
        "asyncio.run(load()); print(runner.load_error)\n", cwd=tmp_path, preloaded=preloaded_bound_by_modes)
    assert done.stdout.strip() == (
        f"run700: Permission denied (it belongs to {other_user}, drwx------); ask {other_user} to give this user "
        "access to it (and to the folders above it), or use another path")


def test_another_users_datasets_cache_is_named_with_its_owner(other_user, tmp_path):
    """`train` with a teammate's datasets cache it may not write: `cannot write the audio folder's listing to the
    datasets cache (Permission denied); set HF_DATASETS_CACHE ...` said nothing of whose the folder was."""
    (tmp_path / "cache").mkdir()
    cache = given_away(tmp_path / "cache", 0o755)
    done = run_bound_by_modes(f"from pathlib import Path\nfrom hfspeech.data.cache_users import cache_folder_problem\n"
                              f"print(cache_folder_problem(Path({str(cache / 'hfspeech-audiofolder')!r})))", tmp_path)
    assert done.stdout.strip() == f"Permission denied: it belongs to {other_user}, drwxr-xr-x"


def test_backend_on_a_run_looks_past_a_folder_this_user_may_not_open(other_user, tmp_path):
    """`predict RUN --backend onnx` with another user's 0700 folder inside RUN stopped on its EACCES (R2)."""
    run = tmp_path / "run"
    (run / "onnx").mkdir(parents=True)
    (run / "onnx" / "model.onnx").write_bytes(b"graph")
    (run / "private").mkdir()
    given_away(run / "private", 0o700)
    done = run_bound_by_modes(f"from pathlib import Path\nfrom hfspeech.inference.backends import run_export\n"
                              f"print(run_export(Path({str(run)!r}), 'onnx'))", tmp_path)
    assert done.stdout.strip() == str(run / "onnx")


def test_a_killed_runs_leftover_holding_the_earlier_output_is_not_to_be_deleted(other_user, tmp_path):
    """Its `earlier` folder is the earlier output's only copy: "ask bob to remove it" would have lost it (R2)."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o777)
    dead = tmp_path / "shared" / ".out-partial-abcd1234"
    (dead / "earlier").mkdir(parents=True)
    given_away(dead / "earlier", 0o755)
    given_away(dead, 0o755)
    done = run_bound_by_modes("import logging; logging.basicConfig(format='%(message)s')\n"
                              "from hfspeech.output_folders import remove_leftover_scratch\n"
                              "remove_leftover_scratch('shared/out')\n", cwd=tmp_path)
    assert done.stderr.strip().endswith(f"ask {other_user} to run the same command again, which puts back the "
                                        "earlier output it holds"), done.stderr


def test_an_owner_without_a_name_is_said_as_a_uid(tmp_path):
    from hfspeech.file_owners import another_users

    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to a uid")
    unnamed = next(uid for uid in range(4242, 5000) if uid not in {entry.pw_uid for entry in pwd.getpwall()})
    (tmp_path / "f").write_text("x")
    os.chown(tmp_path / "f", unnamed, unnamed)
    assert another_users(tmp_path / "f").name == f"uid {unnamed}"
