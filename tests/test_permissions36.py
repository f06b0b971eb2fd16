"""hfspeech as scripts and containers run it (audit OU, session 36): folders this user may not write, inputs it may
not read, no home folder, standard streams closed, SIGHUP, and `--help | head -1`.

Root reads and writes any file whatever its mode, so the permission tests run their check in a process that file
modes bind: root's override of them dropped with `setpriv` (skipped where it cannot be), as a container's non-root
user finds them. No home (HOME unset, no passwd entry) is `pwd.getpwuid` raising KeyError, as it does for such a user.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli_output, save_random_baseline

REPO = Path(__file__).resolve().parents[1]
WITHOUT_ROOTS_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


def as_another_user(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Python `code` run where file modes bind (root: `setpriv` drops its override of them)."""
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None or subprocess.run([*WITHOUT_ROOTS_OVERRIDE, "true"]).returncode != 0:
            pytest.skip("root reads and writes any file, and setpriv cannot drop that here")
        command = [*WITHOUT_ROOTS_OVERRIDE, *command]
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=environment, timeout=300)


def hfspeech_code(*args: str) -> str:
    return f"import sys; from hfspeech.cli import main; sys.exit(main({list(args)!r}))"


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "rodir"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_a_folder_that_cannot_be_made_there_is_one_line_naming_it_not_a_traceback(read_only_folder, tmp_path):
    """`demo-data rodir/d` (and predict's --timeline) stopped on a PermissionError traceback from mkdir, exit code 1:
    `errors.WRITE_ERRNOS` leaves out EACCES, which a read raises too, so the CLI's catch-all let it through."""
    done = as_another_user(hfspeech_code("demo-data", "rodir/d"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: rodir/d: cannot write in rodir (Permission denied); make it writable, or write elsewhere")


def test_output_folders_name_the_users_folder_not_a_hidden_scratch_folder(read_only_folder, tmp_path):
    """Checked before the work (train, evaluate, export, tiny-model, average, pretrained); `locked_scratch` (export,
    stage, tiny-model into a folder already there) named `rodir/.out-partial-rep7vy6r`, a folder the user never made."""
    done = as_another_user(
        "from pathlib import Path\n"
        "from hfspeech.output_folders import locked_scratch, output_folder_problem\n"
        "print(output_folder_problem('rodir/new'))\n"
        "try: locked_scratch(Path('rodir/out'))\n"
        "except PermissionError as error: print(type(error).__name__, error)\n", cwd=tmp_path)
    assert done.stdout.splitlines() == [
        "cannot write in rodir (Permission denied); make it writable, or write elsewhere",
        "FolderNotWritableError rodir/out: cannot write in rodir (Permission denied); make it writable, or write "
        "elsewhere"], done.stderr
    assert os.listdir(read_only_folder) == []


def test_the_pretrained_cache_in_a_read_only_home_says_what_to_set(read_only_folder, tmp_path):
    done = as_another_user(hfspeech_code("pretrained", "whisper-tiny.en"), cwd=tmp_path,
                           env={"HOME": str(read_only_folder), "HFSPEECH_CACHE": "", "XDG_CACHE_HOME": ""})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {read_only_folder}/.cache/hfspeech/pretrained/wheels: cannot write in {read_only_folder} (Permission "
        "denied); make it writable, or set HFSPEECH_CACHE to a folder this user may write")


def test_an_unreadable_data_folder_is_one_line_naming_it(tmp_path):
    """It was a PermissionError traceback from the first look into the folder, in train and evaluate."""
    (tmp_path / "data" / "yes").mkdir(parents=True)
    (tmp_path / "data").chmod(0)
    try:
        done = as_another_user("from hfspeech.errors import HfspeechError\n"
                               "from hfspeech.data.loading import load_audio_dataset\n"
                               "try: load_audio_dataset(data_dir='data')\n"
                               "except HfspeechError as error: print(error)\n", cwd=tmp_path)
    finally:
        (tmp_path / "data").chmod(0o755)
    assert done.stdout.strip() == f"{tmp_path / 'data'}: cannot be read (Permission denied)", done.stderr


def test_an_unreadable_clip_is_left_to_decoding_by_the_split_audit(tmp_path):
    """The copy check read a clip of the same size as one of another split and stopped on a PermissionError, even
    with --skip_bad_files; decoding names it as a bad file (skipped and counted with the flag), as evaluate did."""
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, np.zeros(800, np.float32), 8000)
    (tmp_path / "b.wav").chmod(0)
    done = as_another_user(
        "from datasets import ClassLabel, Dataset, DatasetDict, Features, Value\n"
        "from hfspeech.data.split_audit import audit_splits\n"
        "features = Features({'audio': Value('string'), 'label': ClassLabel(names=['x'])})\n"
        "split = lambda path: Dataset.from_dict({'audio': [path], 'label': [0]}, features=features)\n"
        "print(audit_splits(DatasetDict(train=split('a.wav'), test=split('b.wav'))))\n", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.fixture
def no_home(monkeypatch):
    """HOME unset and no passwd entry for this user, as in `docker run --user 12345`."""
    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("HOME", "XDG_CACHE_HOME", "HF_HOME", "HFSPEECH_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert os.path.expanduser("~") == "~"


NO_HOME = f"error: no home folder to keep caches in (HOME is not set and user {os.getuid()} has no passwd entry): "


def test_pretrained_list_without_a_home_lists_and_says_there_is_no_cache(no_home, capsys):
    """It printed its list, then `RuntimeError: Could not determine home directory.` (exit code 1); then it was
    refused outright, though a list needs no cache (session 40: a container's pod audit)."""
    code, out, err = run_cli_output(["pretrained", "--list"], capsys)
    assert (code, err) == (0, "") and out.startswith("whisper-")
    assert out.splitlines()[-1] == "cache: none (" + NO_HOME[len("error: "):] + \
        "set HOME, or HFSPEECH_CACHE (or XDG_CACHE_HOME))"


def test_commands_keeping_caches_are_refused_without_a_home_before_they_write(no_home, tmp_path, monkeypatch,
                                                                              capsys):
    """datasets kept its cache in a folder literally named `./~/.cache/huggingface`, distill its teacher logits in
    `./~/.cache/hfspeech`, then stopped on a traceback; a place given for them is enough."""
    from hfspeech.cache_folders import NoHomeError, teacher_logits_cache
    from hfspeech.models.whisper.pretrained import resolve_pretrained

    monkeypatch.chdir(tmp_path)
    evaluate = ["evaluate", "--model", "m", "--data_dir", "d", "--output_dir", "o"]
    assert run_cli_output(evaluate, capsys)[1:] == ("", NO_HOME + "set HOME, or HF_HOME (or XDG_CACHE_HOME)\n")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))  # datasets' cache placed: on to its own checks
    assert "no home folder" not in run_cli_output(evaluate, capsys)[2]
    distill = ["distill", "--teacher", "t", "--data_dir", "d", "--output_dir", "o", "--teacher_cache_dir", "c"]
    assert "no home folder" not in run_cli_output(distill, capsys)[2]
    assert os.listdir(tmp_path) == []
    with pytest.raises(NoHomeError, match=r"set HOME, or XDG_CACHE_HOME \(or give --teacher_cache_dir\)$"):
        teacher_logits_cache()  # an --args_file may give --teacher_cache_dir: asked where the cache is looked up
    monkeypatch.setenv("XDG_CACHE_HOME", "~/cache")  # as a Dockerfile's ENV leaves it: `./~/cache` folders
    with pytest.raises(NoHomeError):
        teacher_logits_cache()
    with pytest.raises(NoHomeError, match="set HOME, or HFSPEECH_CACHE"):  # `train --model_name_or_path
        resolve_pretrained("whisper-tiny.en")  # whisper-tiny.en`: Path.home()'s traceback, with HF_HOME set


def test_predict_needs_no_home(no_home, tmp_path, capsys):
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000)
    code, out, err = run_cli_output(["predict", str(model), str(tmp_path / "a.wav"), "--json"], capsys)
    assert code == 0 and json.loads(out)["path"].endswith("a.wav"), err


def test_hfspeechs_caches_follow_xdg_cache_home(tmp_path, monkeypatch):
    """The teacher logits' folder, worked out at import from `~`, ignored XDG_CACHE_HOME; so did the pretrained one."""
    from datasets import Dataset

    from hfspeech.models.whisper.pretrained import cache_dir
    from hfspeech.training.teacher_cache import teacher_logits

    monkeypatch.delenv("HFSPEECH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")  # a Dockerfile's ENV leaves `~` as it is: expanded, not `./~`
    assert cache_dir() == tmp_path / "home" / "xdg" / "hfspeech" / "pretrained"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "hfspeech" / "pretrained"
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    clips = Dataset.from_dict({"input_values": [np.zeros(1600, np.float32)] * 2})
    teacher_logits(str(teacher), clips, 16000, ["a", "b"], batch_size=2)
    assert len(os.listdir(tmp_path / "xdg" / "hfspeech" / "teacher_logits")) == 1


def run_with_closed(stream: str, *args: str) -> subprocess.CompletedProcess:
    """`hfspeech ARGS` started with `stream` closed (`>&-`, `2>&-`, `<&-`), as a script or a service may."""
    shell = f'exec "$0" -m hfspeech.cli "$@" {stream}'
    return subprocess.run(["sh", "-c", shell, sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_closed_standard_streams_are_no_traceback_and_errors_never_land_on_stdout():
    """A closed stderr: print(file=None) printed the `error:` line to stdout, into the results. A closed stdout: an
    AttributeError traceback from main's flush (exit code 1), where its output had to go. A closed stdin: `stream`'s
    isatty on None."""
    done = run_with_closed("2>&-", "predikt")
    assert (done.returncode, done.stdout) == (2, "")
    done = run_with_closed(">&-", "--help")
    assert (done.returncode, done.stderr) == (2, "error: stdout: closed (the command was started without one, as "
                                              "with >&-), and this command prints its output there; give it a file, "
                                              "a pipe or /dev/null\n")
    done = run_with_closed("<&-", "stream", "model")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(
        "error: no audio: stdin is closed (<&-); pipe raw PCM"), done.stderr


def hangup_default() -> None:
    """A child that dies of SIGHUP though pytest runs under `nohup` (which ignores it, and children inherit that)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class RecordedWrites(io.RawIOBase):
    """An unbuffered stdout (PYTHONUNBUFFERED=1, as CI sets it) that keeps each write it is given."""

    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.writes.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_are_one_write(monkeypatch, flag):
    """`hfspeech --help | head -1` exited 0 or 141 at random: print wrote the text, then "\\n" alone, and that second
    write met the pipe `head` had closed."""
    from hfspeech.cli import main

    raw = RecordedWrites()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    assert main([flag]) == 0
    assert len(raw.writes) == 1 and raw.writes[0].startswith(b"hfspeech " if flag == "--version" else b"The ")
    assert raw.writes[0].endswith(b"\n")


def test_a_command_whose_results_are_files_runs_with_stdout_closed(tmp_path):
    """A closed stdout refused every command's first print: `train >&-` stopped at its first log line (transformers'
    PrinterCallback), its run thrown away; `demo-data` wrote its clips, then exit code 2. Only a command whose results
    are stdout (predict without --output FILE, stream, --help) refuses it, before any work."""
    done = run_with_closed(">&-", "demo-data", str(tmp_path / "data"), "--clips_per_class", "2")
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr
    assert len(list((tmp_path / "data").glob("*/*.wav"))) == 16
    done = run_with_closed(">&-", "predict", str(tmp_path / "no-model"), str(tmp_path / "a.wav"))
    assert done.returncode == 2 and done.stderr.startswith("error: stdout: closed"), done.stderr


def test_whisper_weights_left_in_the_cache_before_xdg_are_named_where_they_are(tmp_path, monkeypatch):
    """With XDG_CACHE_HOME set, weights fetched into ~/.cache/hfspeech/pretrained were "not in the cache", and an
    offline machine could not fetch them again: the error now says where they are."""
    from hfspeech.models.whisper.pretrained import PretrainedError, resolve_pretrained

    monkeypatch.delenv("HFSPEECH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    earlier = tmp_path / ".cache" / "hfspeech" / "pretrained"
    (earlier / "whisper-tiny.en").mkdir(parents=True)
    with pytest.raises(PretrainedError, match=f"it is in {earlier}, the cache before hfspeech followed XDG_CACHE_HOME: "
                                              f"set HFSPEECH_CACHE={earlier}"):
        resolve_pretrained("whisper-tiny.en")


def test_a_stream_whose_terminal_is_gone_still_dies_of_the_hangup(tmp_path):
    """ssh closes the terminal, then sends SIGHUP: the last window's line met EIO, an OSError traceback, exit 1."""
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    pcm = (np.random.default_rng(0).normal(0, 0.1, 16000 * 2) * 32767).astype("<i2").tobytes()
    terminal, its_end = os.openpty()
    stream = subprocess.Popen([sys.executable, "-m", "hfspeech.cli", "stream", str(model), "--window_seconds", "1",
                               "--windows"], stdin=subprocess.PIPE, stdout=its_end, stderr=subprocess.PIPE,
                              preexec_fn=hangup_default)
    os.close(its_end)
    try:
        stream.stdin.write(pcm)
        stream.stdin.flush()
        seen = b""
        while b"window" not in seen:
            seen += os.read(terminal, 4096)
        os.close(terminal)  # the terminal is gone: writes to it fail (EIO)
        stream.send_signal(signal.SIGHUP)
        _, err = stream.communicate(timeout=120)
    finally:
        stream.kill()
    assert stream.returncode == -signal.SIGHUP and "Traceback" not in err.decode(), err.decode()[-2000:]
