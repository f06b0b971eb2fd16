"""`hfspeech predict --output FILE` run again: it resumes only an output of the same model, matches a file
however its path is written, and every output stays readable one file per row/line (paths with newlines,
labels holding the separator of their cell)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.inference.classifier import Prediction
from hfspeech.inference.outputs import PredictionWriter, read_earlier_output, split_labels
from hfspeech.inference.timeline import write_timeline
from hfspeech.inference.windows import WindowResult
from tests.conftest import save_random_baseline, synth_clip

TINY = dict(n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


@pytest.fixture(scope="module")
def tones_model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("tones") / "cnn", "cnn", ["low", "high", "noise"], 0.5, **TINY)


@pytest.fixture(scope="module")
def animals_model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("animals") / "cnn", "cnn", ["cat", "dog", "bird"], 0.5, **TINY)


def write_clip(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_clip("low", np.random.default_rng(0), 16000, 0.6), 16000)
    return str(path)


@pytest.mark.parametrize("name", ["preds.csv", "preds.jsonl"])
def test_an_output_written_by_another_model_is_refused_by_name_and_left_alone(tones_model, animals_model,
                                                                            tmp_path, capsys, name):
    output = tmp_path / name
    first, second = write_clip(tmp_path / "a.wav"), write_clip(tmp_path / "b.wav")
    assert cli(["predict", str(tones_model), first, "--output", str(output)]) == 0
    before = output.read_bytes()
    capsys.readouterr()
    code = cli(["predict", str(animals_model), first, second, "--output", str(output)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{output}: written by another model" in err and "give a new --output file, or delete" in err
    assert output.read_bytes() == before  # nothing of the other model appended
    # The same model resumes as before: the first file skipped, the second appended.
    assert cli(["predict", str(tones_model), first, second, "--output", str(output)]) == 0
    assert "1 files written" in capsys.readouterr().err and read_earlier_output(str(output))[0] == {first, second}


def test_resume_matches_a_file_however_its_path_is_written(tones_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "a.wav")
    assert cli(["predict", str(tones_model), "a.wav", "--output", "preds.csv"]) == 0
    capsys.readouterr()
    assert cli(["predict", str(tones_model), "./a.wav", str(tmp_path / "a.wav"),
                "--output", "preds.csv"]) == 0
    assert "0 files written to preds.csv (2 already there, 0 failed)" in capsys.readouterr().err
    with open(tmp_path / "preds.csv", newline="") as f:
        assert [row["path"] for row in csv.DictReader(f)] == ["a.wav"]


def test_the_plain_output_keeps_one_line_per_file_for_a_path_with_a_newline(tones_model, tmp_path, capsys):
    odd = write_clip(tmp_path / "take\n1.wav")
    plain = write_clip(tmp_path / "plain.wav")
    assert cli(["predict", str(tones_model), odd, plain]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(repr(odd) + ": ") and lines[1].startswith(plain + ": ")


def test_csv_label_cells_split_back_into_labels_that_hold_the_separator(tmp_path, capsys):
    labels = ["rain|wind", "car", "[x]"]
    model = save_random_baseline(tmp_path / "cnn", "cnn", labels, 0.5, **TINY)
    output, clip = tmp_path / "preds.csv", write_clip(tmp_path / "a.wav")
    assert cli(["predict", str(model), clip, "--output", str(output)]) == 0
    with open(output, newline="") as f:
        row = next(csv.DictReader(f))
    assert sorted(split_labels(row["labels"])) == sorted(labels) and row["label"] in labels
    assert json.loads(row["labels"])[0] == row["label"]
    # Resuming reads its own cells back: no "another model" refusal, the file skipped.
    assert cli(["predict", str(model), clip, "--output", str(output)]) == 0
    assert "0 files written" in capsys.readouterr().err


def test_an_older_csv_with_a_split_label_still_resumes(tmp_path):
    output = tmp_path / "preds.csv"
    with PredictionWriter(str(output)) as writer:
        writer.write(Prediction("a.wav", ["car", "bus"], [0.75, 0.25], 1))
    assert split_labels("rain|wind|car") == ["rain", "wind", "car"]  # cells written before JSON lists
    assert split_labels('["rain|wind", "car"]') == ["rain|wind", "car"]
    assert read_earlier_output(str(output))[0] == {"a.wav"}


def test_timeline_csv_active_labels_holding_the_separator_split_back(tmp_path):
    labels = {0: "speech;music", 1: "dog"}
    window = WindowResult(0, 0.0, 1.0, np.array([0.9, 0.8], dtype=np.float32), ["speech;music", "dog"])
    prediction = Prediction("a.wav", ["speech;music", "dog"], [0.9, 0.8], 1, ["speech;music", "dog"],
                            windows=[window])
    paths = write_timeline(prediction, SimpleNamespace(id2label=labels), tmp_path, "a")
    with open(paths["csv"], newline="") as f:
        row = next(csv.DictReader(f))
    assert split_labels(row["active_labels"], ";") == ["speech;music", "dog"]
