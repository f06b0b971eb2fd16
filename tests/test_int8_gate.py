"""The int8 accuracy gate of `hfspeech export --quantize int8 --eval_dir DATA`: it measures the int8 model
against the original on held-out clips, keeps one that classifies as well, and refuses (deletes, with the
numbers) one that loses more than a point of accuracy, here a real one: a model with an activation outlier,
the classic way 8-bit activations fail."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from safetensors.numpy import load_file, save_file

from hfspeech.cli import main as cli
from tests.conftest import write_tone_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
OUTLIER = 1e4


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("held_out"), clips_per_class=8, seed=77)


def with_activation_outlier(trained: Path, folder: Path) -> Path:
    """The trained CNN with one channel of its last block made a constant `OUTLIER` (its conv silenced, its
    batch norm shifted) and the classifier's weights on that channel zeroed: in float it still classifies on
    the other channels, but one activation 10^4 times larger than the rest leaves 8-bit activations no
    resolution for them."""
    shutil.copytree(trained, folder)
    weights = load_file(folder / "model.safetensors")
    last = max(int(re.search(r"blocks\.(\d+)\.", key).group(1)) for key in weights if ".blocks." in key)
    block, channel = f"cnn.blocks.{last}", 0
    weights[f"{block}.conv.weight"][channel] = 0.0
    weights[f"{block}.norm.weight"][channel] = 0.0
    weights[f"{block}.norm.bias"][channel] = OUTLIER
    bins = weights["classifier.weight"].shape[1] // weights[f"{block}.norm.bias"].shape[0]
    weights["classifier.weight"][:, channel * bins : (channel + 1) * bins] = 0.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_int8_that_keeps_the_accuracy_passes_the_gate(trained_cnn, held_out, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert cli(["export", str(trained_cnn), "--quantize", "int8", "--eval_dir", str(held_out),
                "--output", str(out)]) == 0
    report = capsys.readouterr().out
    match = re.search(r"int8 check: 24 clips: accuracy fp32 ([\d.]+)%, int8 ([\d.]+)% .* agreement ([\d.]+)%", report)
    assert match, report
    fp32, int8, agreement = map(float, match.groups())
    assert fp32 - int8 <= 1.0 and agreement >= 95.0 and fp32 >= 90.0
    assert (out / "model_quantized.onnx").is_file()


def test_int8_that_loses_accuracy_is_refused_unless_forced(trained_cnn, held_out, tmp_path, capsys):
    model = with_activation_outlier(trained_cnn, tmp_path / "outlier")
    out = tmp_path / "onnx"
    assert cli(["export", str(model), "--quantize", "int8", "--eval_dir", str(held_out), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    match = re.search(r"int8 loses ([\d.]+) accuracy points \(more than 1\) on 24 clips: accuracy fp32 ([\d.]+)%", error)
    assert match, error
    assert float(match.group(2)) >= 90.0  # the float model still works: the loss is int8's
    assert float(match.group(1)) > 20.0 and "the file was deleted" in error
    assert not (out / "model_quantized.onnx").exists() and (out / "model.onnx").is_file()
    assert not (out / "ort_config.json").exists()  # optimum's record of the deleted file goes with it
    assert cli(["export", str(model), "--quantize", "int8", "--eval_dir", str(held_out), "--output", str(out),
                "--force"]) == 0
    assert (out / "model_quantized.onnx").is_file() and "int8 check" in capsys.readouterr().out


def test_the_gate_names_a_label_the_model_does_not_know(trained_cnn, tmp_path, capsys):
    strange = write_tone_folder(tmp_path / "strange", clips_per_class=1)
    (strange / "low").rename(strange / "squeak")
    assert cli(["export", str(trained_cnn), "--quantize", "int8", "--eval_dir", str(strange),
                "--output", str(tmp_path / "onnx")]) == 2
    assert re.search(r"squeak/low_000\.wav: label 'squeak' .* not one of the model's labels",
                     capsys.readouterr().err)
