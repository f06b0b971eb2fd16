"""`hfspeech predict`, `hfspeech evaluate` and pipeline() on a model trained by the recipe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from transformers import pipeline

from hfspeech.cli import main as cli
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.windows import split_windows
from hfspeech.models.folder_checks import NotAModelError
from tests.conftest import synth_clip


def test_predict_prints_the_top_labels(trained_cnn, tone_folder, capsys):
    files = [sorted((tone_folder / kind).glob("*.wav"))[-1] for kind in ("low", "high")]
    assert cli(["predict", str(trained_cnn), *map(str, files), "--top-k", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["predictions"][0]["label"] for line in lines] == ["low", "high"]
    for line in lines:
        scores = [p["score"] for p in line["predictions"]]
        assert len(scores) == 2 and scores[0] >= scores[1] and 0 < sum(scores) <= 1.0001


def test_long_files_are_classified_in_windows(trained_cnn, tmp_path, capsys):
    rng = np.random.default_rng(5)
    long_clip = np.concatenate([synth_clip("high", rng, 16000, 0.5) for _ in range(12)])  # 6 s, model window 0.5 s
    sf.write(tmp_path / "long.wav", long_clip, 16000)
    assert cli(["predict", str(trained_cnn), str(tmp_path / "long.wav"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_windows"] == len(split_windows(long_clip, 16000, 0.5)) > 10
    assert result["predictions"][0]["label"] == "high"


def test_windows_cover_the_whole_clip():
    windows = split_windows(np.arange(1050, dtype=np.float32), 100, window_seconds=4.0, hop_seconds=3.0)
    assert [w[0] for w in windows] == [0, 300, 600, 650] and all(len(w) == 400 for w in windows)
    assert len(split_windows(np.zeros(50, np.float32), 100, 4.0)) == 1


def test_predict_names_a_bad_file_and_fails(trained_cnn, tmp_path, capsys):
    (tmp_path / "broken.wav").write_bytes(b"not a wav file at all" * 10)
    assert cli(["predict", str(trained_cnn), str(tmp_path / "broken.wav")]) == 1
    assert f"{tmp_path / 'broken.wav'}: cannot be decoded" in capsys.readouterr().err


def test_predict_on_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert cli(["predict", str(tmp_path), "x.wav"]) == 2
    assert f"{tmp_path}: not a model folder (no config.json)" in capsys.readouterr().err
    with pytest.raises(NotAModelError, match="it is a file"):
        AudioClassifier.from_pretrained(str(tmp_path / "notes.txt"))


def test_pipeline_gives_the_same_scores_as_the_classifier(trained_cnn):
    clip = synth_clip("noise", np.random.default_rng(1), 16000, 0.5)
    classifier = pipeline("audio-classification", model=str(trained_cnn))
    results = classifier({"raw": clip, "sampling_rate": 16000}, top_k=3)
    ours = AudioClassifier.from_pretrained(str(trained_cnn)).classify_waveform(clip, top_k=3)
    assert [r["label"] for r in results] == ours.labels and ours.labels[0] == "noise"
    assert np.allclose([r["score"] for r in results], ours.scores, atol=1e-5)


def test_evaluate_writes_a_report_and_rejects_unknown_labels(trained_cnn, tone_folder, tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(out)]) == 0
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["num_clips"] == 60 and metrics["accuracy"] > 0.8
    assert (out / "train_confusion_matrix.png").is_file()
    reports = {path.name: path.read_bytes() for path in trained_cnn.iterdir() if path.is_file()}
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder),
                "--output_dir", str(trained_cnn)]) == 2  # would replace the run's own data report
    assert "a model folder; the evaluation's reports would replace its own" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in trained_cnn.iterdir() if path.is_file()} == reports
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder),
                "--output_dir", str(tmp_path / "mine")]) == 2  # a folder of the user's, not an earlier evaluation
    assert "holds other files (notes.txt), not an earlier evaluation" in capsys.readouterr().err
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(out)]) == 0

    strange = tmp_path / "strange"
    (strange / "squeak").mkdir(parents=True)
    sf.write(strange / "squeak" / "a.wav", synth_clip("low", np.random.default_rng(0), 16000), 16000)
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(strange), "--output_dir", str(out)]) == 2
    assert re.match(r"error: .*squeak/a\.wav: unknown label 'squeak'.*known labels: \['high', 'low', 'noise'\]$",
                    capsys.readouterr().err.strip().splitlines()[-1])


def test_evaluate_scores_files_on_disk_as_it_scores_clips_held_as_bytes(trained_cnn, tone_folder, tmp_path):
    """Files on disk are read in chunks (bounded memory); a saved dataset's bytes are decoded whole. Same numbers."""
    from datasets import Audio, load_dataset

    on_disk = tmp_path / "on_disk"
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(on_disk),
                "--aggregate", "vote"]) == 0
    saved = tmp_path / "saved"
    embedded = load_dataset("audiofolder", data_dir=str(tone_folder), drop_labels=False)
    embedded = embedded.cast_column("audio", Audio(decode=False)).map(
        lambda row: {"audio": {"path": None, "bytes": open(row["audio"]["path"], "rb").read()}})
    embedded.save_to_disk(str(saved))
    in_memory = tmp_path / "in_memory"
    assert cli(["evaluate", "--model", str(trained_cnn), "--dataset_name", str(saved), "--output_dir",
                str(in_memory), "--aggregate", "vote"]) == 0
    a, b = (json.loads((out / "train_metrics.json").read_text()) for out in (on_disk, in_memory))
    assert a["num_clips"] == b["num_clips"] == 60 and a["aggregate"] == "vote"
    assert a["accuracy"] == b["accuracy"] and a["macro_f1"] == b["macro_f1"]
    confusion = [json.loads((out / "train_confusion_matrix.json").read_text()) for out in (on_disk, in_memory)]
    assert confusion[0] == confusion[1]


def test_evaluate_names_a_bad_file_or_skips_and_counts_it(trained_cnn, tmp_path, capsys):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for kind in ("low", "high"):
        (data / kind).mkdir(parents=True)
        for i in range(3):
            sf.write(data / kind / f"{i}.wav", synth_clip(kind, rng, 16000), 16000)
    (data / "high" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(data), "--output_dir", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {data / 'high' / 'broken.wav'}: ")
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(data), "--output_dir", str(out),
                "--skip_bad_files"]) == 0
    metrics = json.loads((out / "train_metrics.json").read_text())
    report = json.loads((out / "data_report.json").read_text())
    assert metrics["num_clips"] == 6 and metrics["num_skipped_files"] == 1
    assert [Path(s["path"]).name for s in report["skipped"]["train"]] == ["broken.wav"]


@pytest.mark.parametrize("flags, error", [
    (["--batch_size", "0"], "--batch_size must be at least 1, got 0"),  # was a traceback
    (["--batch_size", "-3"], "--batch_size must be at least 1, got -3"),  # never ended
    (["--window_seconds", "-1"], "--window_seconds must be above 0, got -1.0"),  # never ended
    (["--window_seconds", "0"], "--window_seconds must be above 0, got 0.0"),  # silently the model's window
    (["--hop_seconds", "0"], "--hop_seconds must be above 0, got 0.0"),  # silently half a window
    (["--max_eval_samples", "3", "--noise-snr-db", "10"], "--max_eval_samples, --noise_snr_db: training flag(s)"),
])
def test_evaluate_refuses_numbers_and_training_flags_it_cannot_honour(flags, error, trained_cnn, tone_folder,
                                                                       tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(out),
                *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and error in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "demo", "demo-data", "tiny-model", "export",
                                     "pretrained"])
def test_every_subcommand_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("command, hint", [("trian", "did you mean `hfspeech train`?"),
                                           ("zzz", "`hfspeech --help` lists them")])
def test_an_unknown_command_is_one_line_naming_the_nearest(command, hint, capsys):
    assert cli([command, "--data_dir", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {command!r} is not an hfspeech command; {hint}" and captured.out == ""


def test_output_into_a_reader_that_has_gone_ends_without_a_traceback():
    """The read end is closed before the command starts, as when `| head` has already exited. The status is 141
    (128 + SIGPIPE), the one cat, grep and git log leave there: it was 1, which predict means for files it could
    not decode."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run([sys.executable, "-m", "hfspeech.cli", "--help"], stdout=write_end,
                                 stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    err = process.stderr.decode()
    assert process.returncode == 141 and "Traceback" not in err and "Exception ignored" not in err, err
