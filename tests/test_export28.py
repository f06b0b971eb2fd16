"""`hfspeech export --quantize int8` of the tiniest CNNs: the int8 file really computes in integers.

An earlier session saw the int8 scores of the tiniest CNNs "exactly equal" to the fp32 export's. Measured
(docs/export.md): the int8 file is quantized (every Conv a ConvInteger, the classifier a MatMulInteger) and its
scores differ from fp32 by about 1e-3; what was equal was the export folder, which runs its fp32 `model.onnx`
even with `model_quantized.onnx` beside it, and predict's three decimals, where a third of the clips match.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from hfspeech.cli import main as cli
from hfspeech.inference.backends import OnnxBackend
from hfspeech.inference.classifier import AudioClassifier
from tests.conftest import save_random_baseline, synth_clip
from tests.test_export import noise_batch, plain_graphs

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def one_block_cnn(tmp_path_factory) -> Path:
    """The smallest CNN there is: one block of two channels (18 convolution weights), whose only convolution
    reads the spectrogram's one channel. Wide init: logits of O(1), so int8's rounding shows in them."""
    folder = tmp_path_factory.mktemp("one_block") / "cnn"
    return save_random_baseline(folder, "cnn", ["low", "high", "noise"], 0.5, conv_channels=[2], n_mels=16,
                                max_length_seconds=0.5)


@pytest.fixture(scope="module", params=["trained_cnn", "one_block_cnn"])
def tiny_export(request, tmp_path_factory) -> tuple[Path, Path]:
    """(model folder, export folder) of `hfspeech export MODEL --quantize int8`, as the user runs it."""
    model, folder = request.getfixturevalue(request.param), tmp_path_factory.mktemp("export") / "onnx"
    assert cli(["export", str(model), "--format", "onnx", "--quantize", "int8", "--output", str(folder)]) == 0
    return model, folder


def test_the_tiniest_cnns_int8_file_computes_in_integers(tiny_export):
    """Every convolution and the classifier run on uint8 weights; only the front end (by name) stays float."""
    _, folder = tiny_export
    fp32, int8 = folder / "model.onnx", folder / "model_quantized.onnx"
    float_ops = Counter(node.op_type for node in plain_graphs(fp32)[0].node)  # the graph for padded batches
    graph = onnx.load(str(int8)).graph
    int8_ops = Counter(node.op_type for node in graph.node)
    assert int8_ops["ConvInteger"] == float_ops["Conv"] > 0 and int8_ops["Conv"] == 0
    assert int8_ops["MatMulInteger"] == float_ops["Gemm"] == 1  # the classifier
    uint8 = {init.name for init in graph.initializer if init.data_type == onnx.TensorProto.UINT8}
    assert all(node.input[1] in uint8 for node in graph.node if node.op_type in ("ConvInteger", "MatMulInteger"))
    assert int8.stat().st_size < fp32.stat().st_size


def test_the_tiniest_cnns_int8_scores_differ_from_fp32_by_rounding_only(tiny_export):
    """Not a copy of the fp32 model (bit-identical logits) and not a broken one: off by int8's rounding."""
    model, folder = tiny_export
    batch = noise_batch(model, [8000, 5000, 3000], seed=1)
    fp32 = OnnxBackend(folder / "model.onnx", config=None).logits(batch)
    int8 = OnnxBackend(folder / "model_quantized.onnx", config=None).logits(batch)
    difference = np.abs(int8 - fp32).max()
    assert 0 < difference < 0.05 * np.ptp(fp32)
    assert (int8.argmax(1) == fp32.argmax(1)).all()


def test_an_export_folder_runs_its_fp32_file_and_the_int8_file_runs_when_named(tiny_export):
    """What made int8 look "exactly equal" to fp32: the folder holding both runs model.onnx."""
    _, folder = tiny_export
    clip = synth_clip("high", np.random.default_rng(3), 16000, 0.4)
    scores = {name: AudioClassifier.from_pretrained(str(path)).predict_proba([clip])[0] for name, path in
              {"folder": folder, "fp32": folder / "model.onnx", "int8": folder / "model_quantized.onnx"}.items()}
    assert np.array_equal(scores["folder"], scores["fp32"])
    assert not np.array_equal(scores["int8"], scores["fp32"])


def test_int8_weights_of_the_one_block_cnn_is_refused_naming_the_users_file_and_why(one_block_cnn, tmp_path, capsys):
    """Its one convolution (18 weights) is below what an int8 copy pays for: one line naming the file the user
    asked for and the reason (it named a deleted scratch copy, `/tmp/tmp.../padded/model.onnx`, and no reason)."""
    out = tmp_path / "deploy"
    capsys.readouterr()
    assert cli(["export", str(one_block_cnn), "--quantize", "int8_weights", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert err.startswith(f"error: {out / 'model.onnx'}: no convolution weights to store as int8 (its largest "
                          "convolution has 18 weights;"), err
    assert err.endswith("; use --quantize int8") and not out.exists()
