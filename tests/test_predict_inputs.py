"""What `hfspeech predict` and `hfspeech stream` are given, as a careless user gives it: folders with hidden
files and linked subfolders, quoted glob patterns, paths with newlines in a resumed CSV, window and hop
lengths that cannot work, a compressed file to --follow. Each is used as the user meant or refused in one
line naming the flag or file; none gives a traceback, a silent skip or a silently wrong answer."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.errors import HfspeechError, UsageError
from hfspeech.inference.classifier import Prediction
from hfspeech.inference.outputs import CSV_COLUMNS, PredictionWriter, expand_inputs, read_earlier_output
from hfspeech.inference.sources import PcmFormat, followed_format, read_pcm, stdin_format
from hfspeech.inference.windows import window_sizes
from tests.conftest import save_random_baseline, synth_clip


@pytest.fixture(scope="module")
def random_cnn(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("inputs") / "cnn", "cnn", ["low", "high", "noise"], 0.5,
                                n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


def write_clip(path: Path, rate: int = 16000, seconds: float = 0.6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_clip("low", np.random.default_rng(0), rate, seconds), rate)
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_folder_is_listed_as_training_lists_it_linked_folders_followed_hidden_files_left_out(tmp_path, caplog):
    folder = tmp_path / "recordings"
    write_clip(folder / "a.wav")
    write_clip(folder / "day2" / "b.flac")
    (folder / "._a.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # not audio: it failed the run
    write_clip(folder / ".cache" / "c.wav")
    (folder / "notes.txt").write_text("mic 2")
    write_clip(tmp_path / "elsewhere" / "d.wav")
    os.symlink(tmp_path / "elsewhere", folder / "linked")  # rglob skipped a linked folder without a word
    with caplog.at_level(logging.WARNING, logger="hfspeech.inference.outputs"):
        files = expand_inputs([str(folder)])
    assert files == [str(folder / "a.wav"), str(folder / "day2" / "b.flac"), str(folder / "linked" / "d.wav")]
    assert f"{folder}: 3 file(s) left out: 2 hidden; 1 not an audio file" in caplog.text


def test_a_quoted_glob_pattern_is_expanded_in_order_and_one_that_matches_nothing_is_reported(tmp_path):
    for name in ("b/2.wav", "a/1.wav", "a/deep/3.flac", "a/skip.txt"):
        write_clip(tmp_path / name) if name.endswith(("wav", "flac")) else (tmp_path / name).write_text("x")
    files = expand_inputs([f"{tmp_path}/**/*", f"{tmp_path}/none/*.wav"])  # folders matched: not listed twice
    assert files == [str(tmp_path / name) for name in ("a/1.wav", "a/deep/3.flac", "b/2.wav")] + \
        [f"{tmp_path}/none/*.wav"]  # kept, so that decoding names it instead of it vanishing


def test_a_csv_output_with_a_newline_in_a_path_resumes_without_writing_that_file_again(tmp_path):
    output = tmp_path / "out.csv"
    paths = ["plain.wav", "take 1,\nmic \"2\".wav", "last.wav"]
    with PredictionWriter(str(output)) as writer:
        for path in paths:
            writer.write(Prediction(path, ["a, b", 'c"d'], [0.75, 0.25], 1))
    with open(output, newline="") as f:
        assert [row["path"] for row in csv.DictReader(f)] == paths
    assert read_earlier_output(str(output))[0] == set(paths)


def test_an_output_csv_the_csv_module_cannot_read_is_refused_by_name_and_left_alone(tmp_path):
    output = tmp_path / "out.csv"
    text = ",".join(CSV_COLUMNS) + "\n" + '"' + "x" * 200_000 + '",a\n'  # was a csv.Error traceback
    output.write_text(text)
    with pytest.raises(ValueError, match="out.csv: not the output of an earlier .* cannot be read as CSV"):
        read_earlier_output(str(output))[0]
    assert output.read_text() == text


@pytest.mark.parametrize("window, hop, problem", [
    (float("inf"), None, "window_seconds must be positive and finite, got inf"),
    (0.5, float("inf"), "hop_seconds must be positive and finite, got inf"),
    (1e-5, None, "window_seconds 1e-05 is shorter than one sample at 16000 Hz"),
    (0.5, 1e-5, "hop_seconds 1e-05 is shorter than one sample at 16000 Hz"),
])
def test_window_and_hop_lengths_no_window_can_have_are_refused(window, hop, problem):
    with pytest.raises(UsageError, match=problem):
        window_sizes(16000, window, hop)
    assert window_sizes(8000, 0.5, 0.25) == (4000, 2000)


@pytest.mark.parametrize("command", ["predict", "stream"])
@pytest.mark.parametrize("flags, problem", [
    (["--window_seconds", "inf"], "error: window_seconds must be positive and finite, got inf"),
    (["--hop_seconds", "0.6"], "error: --hop_seconds 0.6 is longer than the window (0.5 s, --window_seconds)"),
])
def test_predict_and_stream_refuse_windows_that_leave_audio_out_in_one_line(random_cnn, tmp_path, capsys,
                                                                             command, flags, problem):
    clip = str(write_clip(tmp_path / "clip.wav"))
    source = [clip] if command == "predict" else ["--follow", clip, "--idle_timeout", "0"]
    assert cli([command, str(random_cnn), *source, *flags]) == 2
    assert one_line_error(capsys).startswith(problem)


def test_predict_refuses_json_with_a_csv_output_instead_of_ignoring_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli(["predict", "no-model", "clip.wav", "--json", "--output", str(tmp_path / "out.csv")])
    assert stop.value.code == 2 and "--json with --output" in capsys.readouterr().err


@pytest.mark.parametrize("subtype, suffix, kind", [("PCM_16", ".flac", "FLAC"), ("VORBIS", ".ogg", "Ogg"),
                                                   ("PCM_16", ".aiff", "AIFF")])
def test_following_a_compressed_file_is_refused_not_read_as_raw_pcm(tmp_path, subtype, suffix, kind):
    path = tmp_path / f"take{suffix}"
    sf.write(path, synth_clip("low", np.random.default_rng(0), 16000, 1.0), 16000, subtype=subtype)
    with pytest.raises(ValueError, match=f"take{suffix}: is {kind} audio, not raw PCM or WAV"):
        followed_format(str(path), PcmFormat("s16le", 16000, 1), idle_timeout=0)
    raw = tmp_path / "take.raw"
    raw.write_bytes(b"fLa" + bytes(100))  # raw PCM that merely starts with similar bytes is followed
    assert followed_format(str(raw), PcmFormat("s16le", 16000, 1), idle_timeout=0)[1] == 0


@pytest.mark.parametrize("flags", [["--poll_seconds", "-1"], ["--poll_seconds", "0"], ["--idle_timeout", "-1"],
                                   ["--min_windows", "0"], ["--channels", "0"]])
def test_stream_flags_out_of_range_are_usage_errors_before_the_model_loads(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as stop:
        cli(["stream", str(tmp_path / "no-model"), "--follow", str(write_clip(tmp_path / "a.wav")), *flags])
    assert stop.value.code == 2 and f"argument {flags[0]}" in capsys.readouterr().err


@pytest.mark.parametrize("name, text, problem", [
    ("excel.csv", "\ufeffpath,label\nclip.wav,low\n", None),  # Excel's byte-order mark: "no 'path' column" before
    ("semicolons.csv", "path;label\nclip.wav;low\n", None),
    ("list.json", '[{"path": "clip.wav"}]', None),
    ("empty.csv", "path,label\n", "manifest has no rows"),  # classified nothing, exit 0, without a word
    ("blank.csv", "path,label\n,low\n", "row 1 has no 'path' (got '')"),  # was "<folder>: is a folder"
    ("broken.jsonl", '{"path": "clip.wav"}\nnot json\n', "line 2 is not valid JSON"),  # named neither
    ("list-line.jsonl", '{"path": "clip.wav"}\n[1]\n', "line 2 is not a JSON object"),  # was a TypeError
])
def test_a_manifest_is_read_as_training_reads_it_and_a_bad_row_is_named(tmp_path, name, text, problem):
    manifest = tmp_path / name
    manifest.write_text(text, encoding="utf-8")
    if problem is None:
        assert expand_inputs([], str(manifest)) == [str(tmp_path / "clip.wav")]
    else:
        with pytest.raises(HfspeechError, match=f"^{manifest}: {re.escape(problem)}"):
            expand_inputs([], str(manifest))


def test_a_resumed_run_keeps_each_files_timeline_name_and_replaces_no_earlier_timeline(random_cnn, tmp_path):
    first, second = str(write_clip(tmp_path / "x" / "take.wav")), str(write_clip(tmp_path / "y" / "take.flac"))
    output, timelines = str(tmp_path / "out.jsonl"), tmp_path / "timelines"
    common = ["--output", output, "--timeline", str(timelines), "--no-progress"]
    assert cli(["predict", str(random_cnn), first, *common]) == 0  # a run stopped after its first file
    assert cli(["predict", str(random_cnn), first, second, *common]) == 0  # resumed: the first file is done
    named = {name: json.loads((timelines / f"{name}.timeline.json").read_text())["path"] for name in ("take", "take-2")}
    assert named == {"take": first, "take-2": second}  # the second file took "take" and replaced the first's


def test_a_wav_piped_into_stream_is_read_at_its_own_rate_without_its_header_as_samples(tmp_path):
    samples = synth_clip("low", np.random.default_rng(0), 8000, 1.5)
    sf.write(tmp_path / "take.wav", samples, 8000, subtype="PCM_16")
    pipe = io.BytesIO((tmp_path / "take.wav").read_bytes())
    pcm, head = stdin_format(pipe, PcmFormat("s16le", 16000, 1))
    assert (pcm.rate, pcm.channels, pcm.sample_format) == (8000, 1, "s16le")  # was taken as 16 kHz raw PCM
    read = np.concatenate(list(read_pcm(pipe, pcm, read_bytes=1000, head=head)))[:, 0]
    np.testing.assert_allclose(read, sf.read(tmp_path / "take.wav", dtype="float32")[0], atol=0)  # no header
    raw = io.BytesIO(b"\x01\x02" * 10)
    assert stdin_format(raw, PcmFormat("s16le", 16000, 1)) == (PcmFormat("s16le", 16000, 1), b"\x01\x02" * 10)


def test_stream_from_a_terminal_says_that_audio_must_be_piped_instead_of_waiting(monkeypatch, capsys):
    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    with pytest.raises(SystemExit) as stop:
        cli(["stream", "no-model"])
    assert stop.value.code == 2 and "no audio: pipe raw PCM or a WAV into stdin" in capsys.readouterr().err
