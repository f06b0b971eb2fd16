"""Small things a user sees (session 42): every flag's default in `--help`, as docs/cli.md promises; the table of
what a run folder holds in docs/training.md against a real run's folder; `hfspeech stream` stopped before any audio
still ending with its counts line; `hfspeech evaluate` warning that it replaces earlier reports only once the model
it would replace them with has loaded."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli_output, save_random_baseline
from hfspeech.cli import COMMANDS
from test_docs30 import help_text

ROOT = Path(__file__).resolve().parents[1]


def flag_entries(command: str) -> dict[str, str]:
    """Each flag's entry in `hfspeech COMMAND --help`, its lines joined: `--top_k TOP_K labels ... (default: 3)`."""
    options = help_text(command).split("\noptions:", 1)[1]
    entries = [" ".join(entry.split()) for entry in re.split(r"\n  (?=--)", options)[1:]]
    return {entry.split()[0]: entry.split("Flags are spelled with underscores")[0] for entry in entries}


def required_flags(command: str) -> set[str]:
    """The flags the usage line shows outside brackets: required, so they have no default to say."""
    usage = " ".join(help_text(command).split("\n\n", 1)[0].split())
    while re.search(r"\[[^\[\]]*\]", usage):  # `[--skip_bad_files [SKIP_BAD_FILES]]`: inner brackets first
        usage = re.sub(r"\[[^\[\]]*\]", "", usage)
    return set(re.findall(r"--\w+", usage))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_of_every_command_says_its_default_once(command):
    """`predict --help` showed `--manifest`, `--timeline` and `--json` with no default, where docs/cli.md says each
    command's --help gives every flag's default; one "(default:" each, as evaluate's (test_journey30)."""
    entries = flag_entries(command)
    assert entries, command
    unsaid = [flag for flag, entry in entries.items() if "default" not in entry.lower()
              and flag not in required_flags(command)]
    assert unsaid == []
    assert [flag for flag, entry in entries.items() if entry.count("(default:") > 1] == []


def test_required_flags_are_read_from_the_usage_line():
    """The exemption above is the usage line's: average's --output_dir is required, its --help no flag of it."""
    assert required_flags("average") == {"--output_dir"} and "--model" in required_flags("evaluate")
    assert required_flags("predict") == set()


def test_a_switch_and_a_flag_without_a_value_say_their_default_as_train_does():
    entries = flag_entries("predict")
    assert entries["--json"].endswith("(default: False)") and entries["--manifest"].endswith("(default: None)")
    assert "(default: False)" in flag_entries("train")["--skip_bad_files"]  # the words HfArgumentParser writes


def run_folder_table() -> list[str]:
    """The names in the first column of docs/training.md's "What a run leaves in `--output_dir`" table, as
    patterns: `test_confusion_matrix.json` / `.png` is two, `checkpoint-*/` the folders `checkpoint-*`."""
    section = (ROOT / "docs/training.md").read_text(encoding="utf-8").split("## What a run leaves in `--output_dir`")[1]
    rows = [line for line in section.split("\n\n###", 1)[0].splitlines() if line.startswith("| `")]
    names = []
    for row in rows:
        for name in re.findall(r"`([^`]+)`", row.split(" | ")[0]):
            names.append(names[-1].rsplit(".", 1)[0] + name if name.startswith(".") else name.rstrip("/"))
    return names


def test_run_folder_table_names_every_file_a_run_leaves(trained_cnn):
    """`training_args.bin` (Trainer's) was in every run folder and not in the table that lists what one holds."""
    from fnmatch import fnmatch

    named, held = run_folder_table(), os.listdir(trained_cnn)
    assert [entry for entry in held if not any(fnmatch(entry, name) for name in named)] == []
    missing = {name for name in named if not any(fnmatch(entry, name) for entry in held)}
    # a multi-label run's reports; `torchscript/`, traced by the `hfspeech train` command, not `training.run.main`
    assert missing <= {"test_multilabel_report.json", "test_per_class_ap.png", "torchscript"}


def file_opened(pid: int, path: Path) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:  # closed meanwhile
            continue
    return False


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads which files the stream opened in /proc")
def test_stream_stopped_before_any_audio_still_prints_its_counts(tmp_path):
    """SIGTERM while a stream waited for its first bytes ended it with no counts line (after audio it printed one):
    a consumer reading to `event: end` was left without it. Now the same line, with zeros."""
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    live = tmp_path / "live.raw"
    live.write_bytes(b"")  # a recording not started yet
    stream = subprocess.Popen([sys.executable, "-m", "hfspeech.cli", "stream", str(model), "--follow", str(live),
                               "--idle_timeout", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not file_opened(stream.pid, live) and stream.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the model loaded; the stream waits for the file's first bytes
        stream.send_signal(signal.SIGTERM)
        out, err = stream.communicate(timeout=120)
    finally:
        stream.kill()
    assert (stream.returncode, err.decode()) == (-signal.SIGTERM, "hfspeech stream: terminated\n")
    lines = out.decode().splitlines()
    assert lines, "no counts line"
    counts = json.loads(lines[-1])
    assert counts == {"event": "end", "windows": 0, "classified": 0, "skipped": 0, "inactive": 0, "events": 0,
                      "samples": 0}


def test_evaluate_of_a_missing_model_refuses_without_saying_it_replaces_earlier_reports(tmp_path, capsys, caplog):
    """The warning "replacing the reports of an earlier evaluation of A" came before "B: model folder not found",
    about reports that then stayed as they were."""
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
    earlier = tmp_path / "eval"
    earlier.mkdir()
    (earlier / "test_metrics.json").write_text(json.dumps({"model": str(tmp_path / "first"), "accuracy": 0.5}))
    (earlier / "test_confusion_matrix.json").write_text(json.dumps({"labels": ["a", "b"], "matrix": [[1, 0], [0, 1]]}))
    before = {path.name: path.read_bytes() for path in earlier.iterdir()}
    with caplog.at_level(logging.WARNING):
        code, _, err = run_cli_output(["evaluate", "--model", str(tmp_path / "missing"), "--data_dir", str(data),
                                       "--output_dir", str(earlier)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "missing" in err, err
    assert "replacing the reports" not in caplog.text + err
    assert {path.name: path.read_bytes() for path in earlier.iterdir()} == before
