"""`hfspeech export` into a folder that holds an earlier export, an export that fails or is stopped half-way, and
int8 gate inputs it cannot use: no file of an earlier export left to run in the new one's place, no half-written
folder that looks finished, no unchecked int8 file.

Small random CNN and LSTM (no training): these tests are about files, not accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import hfspeech.export.onnx_export as onnx_export
from hfspeech.cli import main as cli
from hfspeech.inference.backends import locate_model
from hfspeech.inference.loading import load_backend
from tests.conftest import save_random_baseline, write_tone_folder

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")

LABELS = ["low", "high", "noise"]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("cnn") / "run", "cnn", LABELS, 0.5, conv_channels=[4, 8],
                                n_mels=16, max_length_seconds=0.5)


def names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def test_exporting_again_leaves_no_file_of_the_earlier_export(cnn, tmp_path):
    out = tmp_path / "deploy"
    assert cli(["export", str(cnn), "--quantize", "int8", "--output", str(out)]) == 0
    assert cli(["export", str(cnn), "--output", str(out)]) == 0  # was: the earlier int8 file kept beside it
    assert names(out) == {"model.onnx", "traced_from.json", "config.json", "preprocessor_config.json"}
    assert cli(["export", str(cnn), "--format", "torchscript", "--output", str(out)]) == 0
    assert names(out) == {"model.torchscript.pt", "traced_from.json", "config.json", "preprocessor_config.json"}
    assert locate_model(str(out))[0] == "torchscript"  # was: the earlier model.onnx, run in the new file's place
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no scratch folder left


def test_an_export_stopped_half_way_leaves_the_earlier_one_as_it_was(cnn, tmp_path, monkeypatch):
    out = tmp_path / "deploy"
    assert cli(["export", str(cnn), "--output", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "shrink_baseline_graph", interrupted)  # after model.onnx is written
    assert cli(["export", str(cnn), "--output", str(out)]) == 130  # Ctrl-C: one line, exit code 130
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert names(tmp_path) == {"deploy"}


def test_a_failed_export_writes_no_folder_and_names_the_real_path(tmp_path, capsys):
    lstm = save_random_baseline(tmp_path / "lstm", "lstm", LABELS, 0.5, lstm_hidden_size=8, n_mfcc=8, n_mels=16)
    (tmp_path / "no_audio").mkdir()
    out = tmp_path / "deploy"
    assert cli(["export", str(lstm), "--quantize", "int8", "--calibration_dir", str(tmp_path / "no_audio"),
                "--output", str(out)]) == 2
    assert "no audio files" in capsys.readouterr().err and not out.exists()  # was: an fp32-only folder
    assert cli(["export", str(lstm), "--quantize", "int8_weights", "--output", str(out)]) == 2
    assert f"error: {out / 'model.onnx'}: no convolution weights" in capsys.readouterr().err
    assert not out.exists() and names(tmp_path) == {"lstm", "no_audio"}


@pytest.mark.parametrize("problem", ["no audio", "a label the model lacks"])
def test_an_eval_dir_the_gate_cannot_use_stops_before_exporting(cnn, tmp_path, problem, capsys):
    held_out = write_tone_folder(tmp_path / "held_out", clips_per_class=1)
    if problem == "no audio":
        for clip in held_out.glob("*/*"):
            clip.unlink()
    else:
        (held_out / "low").rename(held_out / "squeak")
    out = tmp_path / "deploy"
    assert cli(["export", str(cnn), "--quantize", "int8", "--eval_dir", str(held_out), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("error: "), err
    assert not out.exists()  # was: model_quantized.onnx written, and left unchecked


@pytest.mark.parametrize("drop", ["-1", "101"])
def test_max_accuracy_drop_outside_0_to_100_is_refused(cnn, tmp_path, drop, capsys):
    out = tmp_path / "deploy"
    with pytest.raises(SystemExit) as exit_info:  # -1 refused every int8 file and deleted it, 101 none
        cli(["export", str(cnn), "--quantize", "int8", "--eval_dir", str(tmp_path), "--max_accuracy_drop", drop,
             "--output", str(out)])
    assert exit_info.value.code == 2 and "--max_accuracy_drop" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_forcing_an_export_backend_on_a_model_folder_points_to_its_export_folder(cnn, backend, capsys):
    assert cli(["predict", str(cnn), "clip.wav", "--backend", backend]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and f"{cnn} is a model folder: predict its export folder" in err, err


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_warns_when_its_model_folder_changed_since(cnn, tmp_path, fmt, caplog):
    run = tmp_path / "run"
    shutil.copytree(cnn, run)
    assert cli(["export", str(run), "--format", fmt]) == 0
    load_backend(str(run / fmt))
    assert "exported from another" not in caplog.text
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b", "2": "c"}}))
    load_backend(str(run / fmt))  # was: the old model, without a word
    assert f"{run / fmt} was exported from another config or weights than {run} holds now" in caplog.text
