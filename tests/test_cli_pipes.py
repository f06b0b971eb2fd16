"""`hfspeech` as a Unix tool in a pipeline: `predict --output -` writes its rows on stdout (nothing else lands
there), a reader that stops early ends the run quietly, `hfspeech` alone is a usage mistake, a file named
`-x.wav` is either read (after `--`) or refused with a hint, and a full disk behind stdout is named."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.inference.outputs import CSV_COLUMNS
from tests.conftest import run_cli_output, save_random_baseline, synth_clip

TINY = dict(n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("pipes") / "cnn", "cnn", ["low", "high", "noise"], 0.5, **TINY)


@pytest.fixture
def clips(tmp_path) -> Path:
    """Three clips, a text file the folder listing leaves out (with a `note:`), and a WAV that is not audio."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, kind in enumerate(["low", "high", "noise"]):
        sf.write(folder / f"{kind}.wav", synth_clip(kind, np.random.default_rng(i), 16000, 0.6), 16000)
    (folder / "notes.txt").write_text("not audio")
    (folder / "zz_broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return folder


def test_output_dash_writes_json_lines_on_stdout_and_everything_else_on_stderr(model, clips, capsys, tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli_output(["predict", str(model), str(clips), "--output", "-", "--progress"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]  # every stdout line is a row
    assert code == 1 and [Path(row["path"]).name for row in rows] == ["high.wav", "low.wav", "noise.wav"]
    assert rows[0]["predictions"][0]["label"] in {"low", "high", "noise"}
    assert "zz_broken.wav" in err and "3 files written to stdout (1 failed)" in err, err
    lines = re.split("[\r\n]", err)  # the error is a line of its own, not glued after the bar's last state:
    assert any(line.startswith("error: ") and "zz_broken.wav" in line for line in lines), err
    assert not (tmp_path / "-").exists()  # was: refused ("-: --output must end in .jsonl or .csv")


@pytest.mark.parametrize("flags", [["--output", "-", "--format", "csv"], ["--format", "csv"]])
def test_csv_rows_on_stdout_have_the_files_header_and_no_carriage_returns(model, clips, capsys, flags):
    code, out, err = run_cli_output(["predict", str(model), str(clips / "low.wav"), str(clips / "high.wav"), *flags],
                                    capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and out.splitlines()[0] == ",".join(CSV_COLUMNS) and "\r" not in out, (out, err)
    assert [row["path"] for row in rows] == [str(clips / "low.wav"), str(clips / "high.wav")]
    assert rows[0]["labels"].count("|") == 2 and float(rows[0]["score"]) > 0


def test_json_with_output_dash_is_json_lines_and_disagreeing_formats_are_refused(model, clips, capsys, tmp_path):
    code, out, _ = run_cli_output(["predict", str(model), str(clips / "low.wav"), "--output", "-", "--json"], capsys)
    assert code == 0 and json.loads(out)["path"].endswith("low.wav")
    for flags, said in [(["--json", "--format", "csv"], "--json with --format csv"),
                        (["--format", "csv", "--output", str(tmp_path / "p.jsonl")], "--format csv with --output")]:
        code, out, err = run_cli_output(["predict", str(model), str(clips / "low.wav"), *flags], capsys)
        assert code == 2 and out == "" and err.startswith(f"error: {said}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p.jsonl").exists()


def test_a_reader_that_stops_after_one_line_ends_the_run_quietly(model, clips, tmp_path):
    for i in range(60):  # more rows than a pipe takes before the reader has gone
        sf.write(clips / f"many_{i:02d}.wav", synth_clip("low", np.random.default_rng(i), 16000, 0.6), 16000)
    process = subprocess.Popen([sys.executable, "-m", "hfspeech.cli", "predict", str(model), str(clips),
                                "--output", "-", "--format", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().decode().startswith("path,label")
    process.stdout.close()  # as `| head -1` does
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) in (0, 141) and "Traceback" not in err and "Exception ignored" not in err, err


def test_hfspeech_alone_is_a_usage_mistake_on_stderr_and_help_stays_on_stdout(capsys):
    code, out, err = run_cli_output([], capsys)
    assert code == 2 and out == "" and err.startswith("usage: hfspeech COMMAND") and "predict" in err, err
    assert err.splitlines()[-1].startswith("error: no command given")
    code, out, err = run_cli_output(["--help"], capsys)
    assert code == 0 and "hfspeech predict" in out and err == ""


def test_a_file_named_with_a_dash_is_read_after_double_dash_and_refused_with_a_hint_without(model, clips, capsys,
                                                                                            monkeypatch):
    monkeypatch.chdir(clips)
    os.replace("low.wav", "-dash.wav")
    code, out, err = run_cli_output(["predict", "--model", str(model), "--", "-dash.wav"], capsys)
    assert code == 0 and out.startswith("-dash.wav: "), err  # --model was "unknown flag(s) ['--model']"
    code, out, err = run_cli_output(["predict", str(model), "-dash.wav"], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("error: unrecognized arguments: -dash.wav; ") and "./-dash.wav" in err and "`--`" in err
    code, _, err = run_cli_output(["stream", str(model), "--follow", "-dash.wav"], capsys)
    assert code == 2 and "--follow ./-dash.wav" in err, err
    code, _, err = run_cli_output(["predict", str(model), "high.wav", "-q"], capsys)
    assert code == 2 and err.strip() == "error: unrecognized arguments: -q"  # no file, no hint


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["predict", "--json"], ["predict", "--output", "-", "--format", "csv"],
                                     ["stream", "--windows", "--idle_timeout", "0", "--follow"]])
def test_stdout_on_a_full_disk_is_one_line_naming_stdout(model, clips, capsys, monkeypatch, command):
    full = open("/dev/full", "w")
    try:
        monkeypatch.setattr(sys, "stdout", full)
        code, _, err = run_cli_output([command[0], str(model), *command[1:], str(clips / "low.wav")], capsys)
    finally:
        with contextlib.suppress(OSError):  # what the failed write left in its buffer
            full.close()
    assert code == 2 and err.startswith("error: stdout: cannot write (No space left on device)"), err
    assert len(err.splitlines()) == 1


def test_files_may_come_after_flags_as_they_do_for_ls(model, clips, capsys):
    code, out, err = run_cli_output(["predict", str(model), "--top_k", "1", str(clips / "low.wav"), "--json",
                                     str(clips / "high.wav")], capsys)
    rows = [json.loads(line) for line in out.splitlines()]  # was: "unrecognized arguments: .../low.wav"
    assert code == 0 and [Path(row["path"]).name for row in rows] == ["low.wav", "high.wav"], err
    assert all(len(row["predictions"]) == 1 for row in rows)


@pytest.mark.parametrize("args, said", [(["-"], "error: -: predict reads audio files, not stdin; "),
                                        (["--output", ""], "error: --output is empty; ")])
def test_a_dash_file_and_an_empty_output_are_refused_by_what_they_are(model, clips, capsys, monkeypatch, args, said):
    monkeypatch.chdir(clips)
    code, out, err = run_cli_output(["predict", str(model), "low.wav", *args], capsys)
    assert code == 2 and out == "" and err.startswith(said) and len(err.splitlines()) == 1, err
