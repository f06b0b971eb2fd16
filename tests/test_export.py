"""ONNX export through optimum, int8 quantization, TorchScript, and running the exports through AudioClassifier.

Each family (CNN, LSTM, tiny Wav2Vec2) is exported once per module and checked against PyTorch on padded
batches of several sizes and lengths, i.e. through the attention masks and the dynamic axes.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.cli import main as cli
from hfspeech.export import ExportError, export_onnx, export_torchscript, quantize_int8
from hfspeech.export.unpadded_branch import split_branches
from hfspeech.inference.backends import OnnxBackend
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.synthetic.tiny import save_tiny_ssl_model
from tests.conftest import TONE_CLASSES, save_random_baseline, synth_clip

# Tracing notes from torch and transformers: the parity checks below are what says whether a trace generalises.
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")

FAMILIES = ["cnn", "lstm", "wav2vec2"]
LABELS = ["low", "high", "noise"]
# Padded batches: one clip, three of very different lengths, five; 1600 samples (0.1 s) is the shortest
# clip the tiny Wav2Vec2's feature encoder still gives frames for.
BATCH_LENGTHS = [[7000], [16000, 5000, 1600], [3000, 12000, 8000, 1700, 16000]]
# Random-weight logits are ~0.01 with the default init (std 0.02): too small for a 1e-4 tolerance to mean
# anything. A wider init makes them O(1).
INIT = 0.5


def save_random_model(folder: Path, family: str) -> Path:
    """A small random-weight model of the family, saved with its feature extractor like a training run."""
    if family == "wav2vec2":
        save_tiny_ssl_model(str(folder), "wav2vec2", labels=LABELS, initializer_range=INIT)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "max_length_seconds": 1.0}))
        return folder
    sizes = {"cnn": dict(conv_channels=[4, 8]), "lstm": dict(lstm_hidden_size=8, n_mfcc=8)}[family]
    # max_length_seconds: the window `AudioClassifier` cuts long files into
    return save_random_baseline(folder, family, LABELS, INIT, n_mels=16, max_length_seconds=0.5, **sizes)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {family: save_random_model(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def onnx_exports(models) -> dict[str, Path]:
    return {family: export_onnx(folder, folder.parent / f"{family}-onnx") for family, folder in models.items()}


def noise_batch(model_dir: Path, lengths: list[int], seed: int) -> dict[str, np.ndarray]:
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    rng = np.random.default_rng(seed)
    clips = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    return dict(extractor(clips, sampling_rate=16000, padding="longest", return_tensors="np"))


def pytorch_logits(model_dir: Path, batch: dict[str, np.ndarray]) -> np.ndarray:
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(**{name: torch.from_numpy(value) for name, value in batch.items()}).logits.numpy()


def plain_graphs(onnx_path: Path) -> list[onnx.GraphProto]:
    """The graphs of an exported file: for a CNN, the one for padded batches and the one for unpadded batches
    (`hfspeech.export.unpadded_branch`); else the file's one graph."""
    model = onnx.load(str(onnx_path))
    branches = split_branches(model)
    return [branch.graph for branch in branches] if branches else [model.graph]


def tone_test_set(n: int = 150, seed: int = 123) -> tuple[list[np.ndarray], list[str]]:
    """Held-out tone clips of random lengths (0.2-0.8 s), generated with a seed the training never saw."""
    rng = np.random.default_rng(seed)
    kinds = [list(TONE_CLASSES)[i % len(TONE_CLASSES)] for i in range(n)]
    return [synth_clip(kind, rng, 16000, rng.uniform(0.2, 0.8)) for kind in kinds], kinds


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_logits_match_pytorch_on_padded_batches(family, models, onnx_exports):
    backend = OnnxBackend(onnx_exports[family], config=None)
    assert set(backend.input_types) == {"input_values", "attention_mask"}
    for node in backend.session.get_inputs():  # batch and time are symbolic, not the export's dummy shape
        assert all(isinstance(dim, str) for dim in node.shape), node.shape
    for seed, lengths in enumerate(BATCH_LENGTHS):
        batch = noise_batch(models[family], lengths, seed)
        expected = pytorch_logits(models[family], batch)
        assert np.ptp(expected) > 0.1  # logits that differ well beyond the tolerance
        np.testing.assert_allclose(backend.logits(batch), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_runs_the_onnx_export_like_the_pytorch_model(family, models, onnx_exports):
    long_clip = synth_clip("high", np.random.default_rng(4), 16000, 2.3)  # several 0.5 s / 1 s windows
    ours = AudioClassifier.from_pretrained(str(onnx_exports[family].parent))
    reference = AudioClassifier.from_pretrained(str(models[family]))
    assert ours.backend.name == "onnx" and reference.backend.name == "pytorch"
    got, expected = ours.classify_waveform(long_clip, top_k=3), reference.classify_waveform(long_clip, top_k=3)
    assert got.num_windows == expected.num_windows > 1
    assert got.labels == expected.labels
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_torchscript_export_matches_pytorch(family, models, tmp_path):
    path = export_torchscript(models[family], tmp_path)
    assert path.name == "model.torchscript.pt" and (tmp_path / "config.json").is_file()
    module = torch.jit.load(str(path))
    for seed, lengths in enumerate(BATCH_LENGTHS):
        batch = noise_batch(models[family], lengths, seed)
        with torch.no_grad():
            got = module(*(torch.from_numpy(batch[name]) for name in ("input_values", "attention_mask"))).numpy()
        np.testing.assert_allclose(got, pytorch_logits(models[family], batch), atol=1e-4, rtol=0)
    clip = synth_clip("low", np.random.default_rng(2), 16000, 1.7)
    got = AudioClassifier.from_pretrained(str(tmp_path)).classify_waveform(clip, top_k=3)
    expected = AudioClassifier.from_pretrained(str(models[family])).classify_waveform(clip, top_k=3)
    assert got.labels == expected.labels and np.allclose(got.scores, expected.scores, atol=1e-5)


def layout_of_4d_weights(module: torch.nn.Module) -> set[str]:
    """How a module's 4-D weights are laid out, by their strides ("channels_last", "default"): a kernel with one
    input channel or 1x1 counts as contiguous in both layouts, but convolutions follow the strides it has."""
    def layout(weight: torch.Tensor) -> str:
        for name, memory_format in (("channels_last", torch.channels_last), ("default", torch.contiguous_format)):
            if weight.stride() == torch.empty(weight.shape, memory_format=memory_format).stride():
                return name
        return "other"

    return {layout(p) for p in module.parameters() if p.dim() == 4 and p.shape[1] * p.shape[2] * p.shape[3] > 1}


def test_the_cnn_runs_and_exports_channels_last(models, tmp_path):
    """The CNN's 2-D convolution weights run channels-last in PyTorch (faster for its oneDNN convolutions and pooling)
    and travel so in the TorchScript file: a trace keeps the layout it saw, and the default one made the file
    1.3-1.7x slower than PyTorch on CPU."""
    traced = torch.jit.load(str(export_torchscript(models["cnn"], tmp_path)))
    running = AudioClassifier.from_pretrained(str(models["cnn"])).backend.model
    assert layout_of_4d_weights(traced) == layout_of_4d_weights(running) == {"channels_last"}


@pytest.fixture(scope="module")
def wide_cnn(tone_folder, tmp_path_factory) -> Path:
    """A CNN trained on the tone data whose conv weights (~400k parameters) outweigh the rest of the graph.

    (The default CNN, 16-32-64-128 channels, has ~100k: its float64 mel filter bank is then a quarter of
    the ONNX file, and int8 makes it about 1.9x smaller, not 2.5x; see the int8 table in docs/inference.md.)
    """
    from hfspeech.training.run import main

    output_dir = tmp_path_factory.mktemp("wide") / "cnn"
    main([
        "--data_dir", str(tone_folder), "--output_dir", str(output_dir), "--model_type", "cnn",
        "--config_overrides", json.dumps({"conv_channels": [32, 64, 128, 256], "apply_spec_augment": False}),
        "--num_train_epochs", "6", "--learning_rate", "3e-3", "--per_device_train_batch_size", "8",
        "--max_length_seconds", "0.5", "--seed", "0", "--save_total_limit", "1",
    ])
    return output_dir


def top1_agreement(model_a: str, model_b: str, clips: list[np.ndarray]) -> float:
    a = AudioClassifier.from_pretrained(model_a).predict_proba(clips).argmax(1)
    b = AudioClassifier.from_pretrained(model_b).predict_proba(clips).argmax(1)
    return float(np.mean(a == b))


def test_dynamic_int8_keeps_the_predictions_and_shrinks_the_file(wide_cnn):
    quantized = export_onnx(wide_cnn, quantize="int8")
    fp32 = quantized.parent / "model.onnx"
    assert quantized.name == "model_quantized.onnx"
    assert fp32.stat().st_size / quantized.stat().st_size >= 2.5
    for graph in plain_graphs(quantized):  # the graphs for padded and for unpadded batches
        ops = Counter(node.op_type for node in graph.node)
        frontend_ops = Counter(node.op_type for node in graph.node if "/frontend/" in node.name)
        assert ops["ConvInteger"] == 4 and frontend_ops["MatMul"] == 3  # the convs are int8, the front end's two
        assert not {"MatMulInteger", "DynamicQuantizeLinear"} & set(frontend_ops)  # DFT and its mel products are not
    clips, labels = tone_test_set()
    assert top1_agreement(str(wide_cnn), str(quantized), clips) >= 0.98
    int8 = AudioClassifier.from_pretrained(str(quantized))
    predicted = [int8.id2label[int(i)] for i in int8.predict_proba(clips).argmax(1)]
    assert np.mean(np.array(predicted) == np.array(labels)) >= 0.95  # agreeing on right answers, not on noise


def test_int8_weights_are_int8_in_the_file_and_float_when_running(wide_cnn, tmp_path):
    """`--quantize int8_weights`: int8 convolution weights in the file, which onnxruntime turns back into float
    weights when it opens it, so the running graph is the float model's (hfspeech.export.conv_weights)."""
    import onnxruntime

    quantized = export_onnx(wide_cnn, tmp_path / "onnx", quantize="int8_weights")
    assert quantized.name == "model_quantized.onnx"
    assert (tmp_path / "onnx" / "model.onnx").stat().st_size / quantized.stat().st_size >= 2.0
    from hfspeech.export.conv_weights import float_conv_weights

    for fp32, stored in zip(plain_graphs(tmp_path / "onnx" / "model.onnx"), plain_graphs(quantized)):
        large_convs = float_conv_weights(fp32)
        assert len(large_convs) == 4
        assert sum(init.data_type == onnx.TensorProto.INT8 for init in stored.initializer) == len(large_convs)
        assert not {"ConvInteger", "DequantizeLinear", "DynamicQuantizeLinear"} & {node.op_type for node in stored.node}
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "running.onnx")
    onnxruntime.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
    running = onnx.load(str(tmp_path / "running.onnx")).graph
    graphs = [running] + [a.g for node in running.node for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    assert not any(init.data_type == onnx.TensorProto.INT8 for g in graphs for init in g.initializer)  # folded
    clips, labels = tone_test_set()
    assert top1_agreement(str(wide_cnn), str(quantized), clips) >= 0.98


@pytest.fixture(scope="module")
def static_int8(wide_cnn, tone_folder, tmp_path_factory) -> tuple[Path, Path]:
    """(folder, quantized file): the wide CNN exported in float to folder/fp32, then quantized static int8 into
    folder/static, calibrated on the training data; made once for the two tests that read it."""
    folder = tmp_path_factory.mktemp("static-int8")
    fp32 = export_onnx(wide_cnn, folder / "fp32")
    return folder, quantize_int8(fp32, output_dir=folder / "static", calibration_dir=tone_folder)


def test_static_int8_calibrated_on_the_training_data(wide_cnn, static_int8):
    """Static int8 for speed (`hfspeech.export.quantization`): both graphs, signed int8 weights, the ReLUs and
    poolings between integer convolutions quantized too, the one-channel first convolution and its block float."""
    from onnx import numpy_helper

    folder, quantized = static_int8
    graphs = plain_graphs(quantized)  # the graphs for padded and for unpadded batches
    for graph in graphs:
        ops = Counter(node.op_type for node in graph.node)
        assert ops["QuantizeLinear"] > 0 and ops["ConvInteger"] == 0  # QDQ with calibrated ranges, not dynamic
        assert ops["Relu"] == 1  # the float first block's; the others are in their convolutions' output ranges
        weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        made_by = {node.output[0]: node for node in graph.node}
        reads = [[made_by.get(name) for name in node.input[:2]] for node in graph.node if node.op_type == "Conv"]
        int8 = [weights[w.input[0]] for _, w in reads if w is not None and w.op_type == "DequantizeLinear"]
        assert len(int8) == 3 and all(w.dtype == np.int8 for w in int8)
        assert reads[0][0] is None or reads[0][0].op_type != "DequantizeLinear"  # the spectrogram's conv: float
    unpadded = graphs[-1]
    made_by = {node.output[0]: node for node in unpadded.node}
    pooled = [made_by[node.input[0]].op_type for node in unpadded.node if node.op_type == "MaxPool"]
    assert pooled == ["Relu"] + ["DequantizeLinear"] * 3  # no masks: uint8 pooling after each int8 conv
    assert (folder / "static" / "config.json").is_file()
    assert top1_agreement(str(wide_cnn), str(quantized), tone_test_set()[0]) >= 0.98


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="NCHWc kernels are x86 only")
def test_static_int8_first_pooling_stays_float_in_hfspeech_onnx_backend(wide_cnn, static_int8, tmp_path):
    """onnxruntime's QDQ propagation would run the float first block's max pooling on uint8 in NCHW (13x slower);
    hfspeech's ONNX backend turns it off for the baselines."""
    import onnxruntime

    from hfspeech.inference.backends import disabled_optimizers

    quantized = static_int8[1]
    config = AudioClassifier.from_pretrained(str(wide_cnn)).config
    pools = {}
    for name, disabled in (("backend", disabled_optimizers(config)), ("default", [])):
        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{name}.onnx")
        onnxruntime.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"],
                                     disabled_optimizers=disabled)
        running = onnx.load(str(tmp_path / f"{name}.onnx"))
        then_branch = next(a.g for a in running.graph.node[-1].attribute if a.name == "then_branch")
        pools[name] = {(node.domain, node.op_type) for node in then_branch.node if "MaxPool" in node.op_type}
    assert ("", "MaxPool") in pools["default"]  # what the backend avoids: a plain (uint8, NCHW) max pooling
    assert ("", "MaxPool") not in pools["backend"] and ("com.microsoft.nchwc", "MaxPool") in pools["backend"]


@pytest.mark.parametrize("family,quantized_op", [("lstm", "DynamicQuantizeLSTM"), ("wav2vec2", "MatMulInteger")])
def test_int8_quantizes_the_lstm_and_wav2vec2_weights(family, quantized_op, models, onnx_exports, tmp_path):
    """LSTM weights live in LSTM ops; Wav2Vec2's in MatMuls (its weight-normed positional conv is baked
    into a plain weight at export, the case ORT's quantizer otherwise stops on)."""
    quantized = quantize_int8(onnx_exports[family], output_dir=tmp_path)
    assert Counter(node.op_type for node in onnx.load(str(quantized)).graph.node)[quantized_op] > 0
    batch = noise_batch(models[family], BATCH_LENGTHS[1], seed=1)
    expected = pytorch_logits(models[family], batch)
    got = OnnxBackend(quantized, config=None).logits(batch)
    assert np.abs(got - expected).max() < 0.1 * np.ptp(expected)


@pytest.mark.parametrize("vnni", [True, False])
@pytest.mark.parametrize("operators, static", [(["MatMul", "Gemm"], False), (["MatMul", "Gemm"], True),
                                               (["Conv", "MatMul"], False), (["Conv", "MatMul", "Relu"], True)])
def test_int8_settings_on_cpus_with_and_without_vnni(monkeypatch, vnni, operators, static):
    """8-bit weights on a VNNI CPU, 7-bit without, signed unless Conv is quantized dynamically: on a VNNI machine
    every transformer int8 export once failed (optimum's VNNI preset takes no `reduce_range`)."""
    from onnxruntime.quantization import QuantType

    from hfspeech.export import quantization

    monkeypatch.setattr(quantization, "has_vnni", lambda: vnni)
    config = quantization.quantization_config(operators, static, nodes_to_exclude=[])
    assert (config.reduce_range, config.is_static) == (not vnni, static)
    dynamic_conv = "Conv" in operators and not static
    assert config.weights_dtype == (QuantType.QUInt8 if dynamic_conv else QuantType.QInt8)


def test_transformer_int8_weights_are_signed_for_the_fast_integer_gemm(onnx_exports, tmp_path):
    """u8s8 is onnxruntime's fast integer GEMM; u8u8 weights ran no faster than fp32 (hfspeech.export.quantization)."""
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(quantize_int8(onnx_exports["wav2vec2"], output_dir=tmp_path))).graph
    initializers = {init.name: init for init in graph.initializer}
    weights = [initializers[node.input[1]] for node in graph.node
               if node.op_type == "MatMulInteger" and node.input[1] in initializers]
    assert weights and all(w.data_type == TensorProto.INT8 for w in weights)
    assert any(numpy_helper.to_array(w).min() < 0 for w in weights)


def test_transformer_int8_stores_its_convolution_weights_as_int8(onnx_exports, tmp_path):
    """Weight-only int8 for Conv: the weights are int8 in the file, turned into float by Cast and Mul (which
    onnxruntime folds at load), and the convolutions compute in float."""
    from hfspeech.export.conv_weights import float_conv_weights

    fp32 = onnx.load(str(onnx_exports["wav2vec2"])).graph
    graph = onnx.load(str(quantize_int8(onnx_exports["wav2vec2"], output_dir=tmp_path))).graph
    assert float_conv_weights(fp32) and not float_conv_weights(graph)
    int8 = {init.name for init in graph.initializer if init.data_type == onnx.TensorProto.INT8}
    cast = {node.output[0] for node in graph.node if node.op_type == "Cast" and node.input[0] in int8}
    scaled = {node.output[0] for node in graph.node if node.op_type == "Mul" and node.input[0] in cast}
    assert any(node.op_type == "Conv" and node.input[1] in scaled for node in graph.node)
    assert not any(node.op_type == "ConvInteger" for node in graph.node)


def test_channel_int8_rounds_each_channel_to_half_a_step():
    from hfspeech.export.conv_weights import channel_int8

    weight = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32) * np.array([1e-3, 1, 50, 0])[:, None, None]
    values, scale = channel_int8(weight)
    restored = values.astype(np.float32) * scale
    assert values.dtype == np.int8 and np.abs(values).max() == 127
    assert np.all(np.abs(restored - weight) <= scale / 2 + 1e-7)
    assert np.all(restored[3] == 0)  # an all-zero channel stays zero (scale 1, not 0/0)


def corrupt(folder: Path, problem: str) -> str:
    """Damage a copy of a model folder; returns the text the error must contain."""
    if problem == "missing config":
        (folder / "config.json").unlink()
        return f"{folder}: not a model folder (no config.json)"
    if problem == "corrupt config":
        (folder / "config.json").write_text('{"model_type": "hfspeech-cnn", "num_labels": ')
        return f"{folder / 'config.json'}: corrupt config, not valid JSON"
    if problem == "missing weights":
        (folder / "model.safetensors").unlink()
        return f"{folder}: no model weights (model.safetensors)"
    if problem == "corrupt weights":
        (folder / "model.safetensors").write_bytes(b"\x00garbage" * 100)
        return f"{folder / 'model.safetensors'}: corrupt weights, cannot be loaded"
    if problem == "weights of another model":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "conv_channels": [4, 8, 16]}))
        return f"{folder / 'model.safetensors'}: weights do not match config.json"
    raise AssertionError(problem)


@pytest.mark.parametrize("exporter", [export_onnx, export_torchscript])
@pytest.mark.parametrize("problem", ["missing config", "corrupt config", "missing weights", "corrupt weights",
                                     "weights of another model"])
def test_a_broken_model_folder_is_named_with_its_problem(problem, exporter, models, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(models["cnn"], folder)
    expected = corrupt(folder, problem)
    with pytest.raises(ExportError) as error:
        exporter(folder, tmp_path / "out")
    assert expected in str(error.value)
    assert not (tmp_path / "out").exists()


def test_a_model_type_optimum_cannot_export_is_named(tmp_path, capsys):
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig

    config = Wav2Vec2BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                output_hidden_size=16, classifier_proj_size=8, num_labels=2)
    AutoModelForAudioClassification.from_config(config).save_pretrained(tmp_path)
    SeamlessM4TFeatureExtractor().save_pretrained(tmp_path)
    assert cli(["export", str(tmp_path), "--output", str(tmp_path / "onnx")]) == 2
    error = capsys.readouterr().err
    assert f"error: {tmp_path}: optimum cannot export model_type 'wav2vec2-bert' to ONNX" in error
    assert "hfspeech-cnn" in error and "wav2vec2," in error  # what it can export instead
    export_torchscript(tmp_path, tmp_path / "torchscript")  # TorchScript has no such list: it traces anything


def test_predict_names_a_damaged_export(onnx_exports, tmp_path, capsys):
    folder = tmp_path / "broken"
    shutil.copytree(onnx_exports["cnn"].parent, folder)
    (folder / "model.onnx").write_bytes(b"not an onnx graph" * 10)
    assert cli(["predict", str(folder), "clip.wav"]) == 2
    assert f"error: {folder / 'model.onnx'}: corrupt, onnxruntime cannot load it" in capsys.readouterr().err
    (folder / "config.json").unlink()
    assert cli(["predict", str(folder / "model.onnx"), "clip.wav"]) == 2
    assert f"error: {folder}: no config.json (labels) beside model.onnx" in capsys.readouterr().err


def test_cli_exports_int8_and_predicts_with_it(trained_cnn, tone_folder, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert cli(["export", str(trained_cnn), "--format", "onnx", "--quantize", "int8", "--output", str(out)]) == 0
    assert {"model.onnx", "model_quantized.onnx", "config.json", "preprocessor_config.json"} <= {
        p.name for p in out.iterdir()}
    files = [str(sorted((tone_folder / kind).glob("*.wav"))[-1]) for kind in ("low", "high", "noise")]
    capsys.readouterr()
    for model in (str(trained_cnn), str(out / "model.onnx"), str(out / "model_quantized.onnx")):
        assert cli(["predict", model, *files, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    top = [[line["predictions"][0]["label"] for line in lines[i : i + 3]] for i in (0, 3, 6)]
    assert top[0] == top[1] == top[2] == ["low", "high", "noise"]
    pytorch, onnx_fp32 = lines[0:3], lines[3:6]
    for a, b in zip(pytorch, onnx_fp32):
        assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
        np.testing.assert_allclose([p["score"] for p in a["predictions"]], [p["score"] for p in b["predictions"]],
                                   atol=1e-5)


@pytest.mark.parametrize("target", ["the model's own folder", "a folder of the user's", "a file"])
def test_export_refuses_an_output_that_holds_other_files(trained_cnn, tmp_path, target, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    output = {"the model's own folder": trained_cnn, "a folder of the user's": mine, "a file": mine / "config.json"}
    before = {p: p.read_bytes() for p in [*trained_cnn.iterdir(), mine / "config.json"] if p.is_file()}
    assert cli(["export", str(trained_cnn), "--output", str(output[target])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith(f"error: --output {output[target]}: "), err
    assert {p: p.read_bytes() for p in before} == before and not (mine / "model.onnx").exists()
