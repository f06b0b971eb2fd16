"""recipes/plain_onnxruntime.py, run where hfspeech, transformers, optimum and torch cannot be imported, gives the
lines `hfspeech predict` gives for the same export: the steps before the graph (downmix, soxr resampling, trim,
windows, normalisation) and after it (softmax or sigmoid, mean, thresholds) are the whole contract."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import TINY_CNN, run_cli_output, save_random_baseline, synth_clip

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "plain_onnxruntime.py"
MULTI_LABEL = "multi_label_classification"

# Runs the recipe with every package of the hfspeech stack refused: `-I` keeps the repository off sys.path, and
# the finder refuses the installed copies.
BLOCKED_RUN = """
import runpy, sys
BLOCKED = {"hfspeech", "transformers", "optimum", "torch", "recipes"}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not allowed here")
sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_plain(model: Path, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", BLOCKED_RUN, str(RECIPE), str(model), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def parsed(lines: str) -> dict[str, dict]:
    """{path: {labels, scores, windows, active}} from predict's plain lines."""
    rows = {}
    for line in lines.strip().splitlines():
        path, rest = line.split(": ", 1)
        ranked = re.findall(r"([^,()]+?) \(([0-9.]+)\)", rest.split("  ")[0])
        windows = re.search(r"\[(\d+) windows\]", rest)
        active = re.search(r"active: (.*)$", rest)
        rows[path] = {"labels": [label.strip() for label, _ in ranked], "scores": [float(s) for _, s in ranked],
                      "windows": int(windows.group(1)) if windows else 1,
                      "active": active.group(1) if active else None}
    return rows


def assert_same_as_predict(model: Path, files: list[Path], capsys, plain_model: Path | None = None,
                           predict_flags: tuple = ()) -> dict:
    code, out, err = run_cli_output(["predict", str(model), *map(str, files), *predict_flags], capsys)
    assert code == 0, err
    plain = run_plain(plain_model or model, files)
    assert plain.returncode == 0, plain.stderr
    expected, got = parsed(out), parsed(plain.stdout)
    assert list(got) == list(expected)
    for path, row in expected.items():
        assert got[path]["labels"] == row["labels"], (path, got[path], row)
        assert got[path]["scores"] == pytest.approx(row["scores"], abs=0.0015)
        assert (got[path]["windows"], got[path]["active"]) == (row["windows"], row["active"])
    return expected


def exported(folder: Path, quantize=None, **config_values) -> Path:
    from hfspeech.export import export_onnx

    labels = config_values.pop("labels", ["low", "high", "noise"])
    save_random_baseline(folder, "cnn", labels, 0.5, max_length_seconds=0.5, **json.loads(TINY_CNN), **config_values)
    return export_onnx(folder, folder / "onnx", quantize=quantize).parent


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory) -> Path:
    return exported(tmp_path_factory.mktemp("plain") / "cnn")


def write_clips(folder: Path) -> list[Path]:
    """A 16-kHz clip, an 8-kHz one (resampled), a stereo one with unequal channels, and one 3x the 0.5-s window."""
    rng = np.random.default_rng(3)
    folder.mkdir(exist_ok=True)
    low, high = synth_clip("low", rng, 44100, 0.45), synth_clip("high", rng, 44100, 0.45)
    clips = {"normal.wav": (synth_clip("high", rng, 16000, 0.5), 16000),
             "narrow.wav": (synth_clip("noise", rng, 8000, 0.5), 8000),
             "stereo.wav": (np.stack([low, 0.3 * high], axis=1), 44100),
             "long.wav": (np.concatenate([synth_clip(kind, rng, 16000, 0.5) for kind in ("low", "noise", "high")]),
                          16000)}
    for name, (samples, rate) in clips.items():
        sf.write(folder / name, samples, rate, subtype="FLOAT")
    return [folder / name for name in clips]


def test_plain_script_gives_predicts_labels_and_scores(cnn_export, tmp_path, capsys):
    rows = assert_same_as_predict(cnn_export, write_clips(tmp_path), capsys)
    assert rows[str(tmp_path / "long.wav")]["windows"] == 5  # 0.25-s hop over 1.5 s


def test_a_lone_onnx_file_keeps_labels_rate_and_window_in_its_metadata(cnn_export, tmp_path, capsys):
    """A `.onnx` copied without its JSON files had empty metadata_props: nothing said its labels or rate."""
    lone = tmp_path / "alone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(cnn_export / "model.onnx", lone)
    assert_same_as_predict(cnn_export, write_clips(tmp_path / "clips"), capsys, plain_model=lone)


def test_multi_label_int8_export_keeps_its_thresholds_and_active_labels(tmp_path, capsys):
    labels = ["alarm", "bark", "car", "door"]
    thresholds = {"alarm": 0.2, "bark": 0.45, "car": 0.6}  # door: the default 0.5
    folder = exported(tmp_path / "ml", quantize="int8", labels=labels, problem_type=MULTI_LABEL,
                      label_thresholds=thresholds)
    lone = tmp_path / "alone" / "model_quantized.onnx"
    lone.parent.mkdir()
    shutil.copy(folder / "model_quantized.onnx", lone)
    # one window at a time, as the script runs them: dynamic int8 scales each batch as a whole (docs/export.md)
    rows = assert_same_as_predict(folder / "model_quantized.onnx", write_clips(tmp_path / "clips"), capsys,
                                  plain_model=lone, predict_flags=("--batch_size", "1"))
    assert all(row["active"] is not None for row in rows.values())


def test_trimmed_model_is_trimmed_as_predict_trims(tmp_path, capsys):
    folder = exported(tmp_path / "trim", trim_silence_top_db=30.0)
    rng = np.random.default_rng(5)
    quiet = 1e-4 * rng.standard_normal(20000).astype(np.float32)
    sf.write(tmp_path / "lead_in.wav", np.concatenate([quiet, synth_clip("low", rng, 16000, 0.4), quiet[:3000]]),
             16000, subtype="FLOAT")
    assert_same_as_predict(folder, [tmp_path / "lead_in.wav"], capsys)


def test_a_folder_without_a_model_is_one_line(tmp_path):
    answer = run_plain(tmp_path, [tmp_path / "x.wav"])
    assert answer.returncode == 2
    assert answer.stderr.strip().count("\n") == 0 and "no such ONNX file" in answer.stderr, answer.stderr


def whisper_export(folder: Path, model_type: str, clip_seconds: float, window_seconds: int) -> Path:
    """A random tiny Whisper classifier cut to a `window_seconds` window for `clip_seconds` clips, exported."""
    import torch
    from transformers import AutoConfig, AutoModelForAudioClassification, WhisperFeatureExtractor

    from hfspeech.export import export_onnx
    from hfspeech.models import register
    from hfspeech.models.whisper import prepare_whisper_classifier
    from hfspeech.synthetic.tiny import TINY_WHISPER_CONFIG

    register()
    torch.manual_seed(0)
    labels = {"id2label": {0: "low", 1: "high", 2: "noise"}, "label2id": {"low": 0, "high": 1, "noise": 2}}
    config = AutoConfig.for_model(model_type, **TINY_WHISPER_CONFIG, **labels)
    model = AutoModelForAudioClassification.from_config(config).eval()
    extractor, _ = prepare_whisper_classifier(model, WhisperFeatureExtractor(), clip_seconds, window_seconds)
    model.config.max_length_seconds = clip_seconds
    with torch.no_grad():  # logits that differ well beyond float noise
        model.classifier.weight.normal_(0, 20.0)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return export_onnx(folder, folder / "onnx").parent


@pytest.mark.parametrize("model_type, clip_seconds, window_seconds", [("whisper", 0.5, 1),
                                                                      ("whisper-clip-pooling", 1.0, 2)])
def test_whisper_export_gives_predicts_labels_and_scores(model_type, clip_seconds, window_seconds, tmp_path, capsys):
    """Before: refused ("takes log-mel input_features"). Now the numpy log-mel: a clip shorter than the window
    (padded with silence; clip pooling masks the padding), an 8-kHz one, a stereo one and one of several windows."""
    folder = whisper_export(tmp_path / "whisper", model_type, clip_seconds, window_seconds)
    rows = assert_same_as_predict(folder, write_clips(tmp_path / "clips"), capsys)
    assert rows[str(tmp_path / "clips" / "long.wav")]["windows"] == (5 if clip_seconds == 0.5 else 2)


def test_a_lone_whisper_onnx_file_takes_its_front_end_from_the_graph(tmp_path, capsys):
    """Without preprocessor_config.json: the extractor's default sizes and the graph's frame count."""
    folder = whisper_export(tmp_path / "whisper", "whisper", 0.5, 1)
    lone = tmp_path / "alone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(folder / "model.onnx", lone)
    assert_same_as_predict(folder, write_clips(tmp_path / "clips"), capsys, plain_model=lone)


def test_numpy_log_mel_is_whisper_feature_extractors(tmp_path):
    """The recipe's features against transformers' own, on random audio shorter than, as long as and longer than
    the window, and for another mel count (the filter bank is built from the config, not stored)."""
    import runpy

    from transformers import WhisperFeatureExtractor

    recipe = runpy.run_path(str(RECIPE))
    rng = np.random.default_rng(0)
    for mels, seconds in ((80, 1), (128, 2)):
        extractor = WhisperFeatureExtractor(feature_size=mels, chunk_length=seconds)
        facts = {"sampling_rate": 16000, "n_fft": 400, "hop_length": 160, "padding_value": 0.0,
                 "n_samples": extractor.n_samples,
                 "mel_filters": recipe["whisper_filter_bank"](16000, 400, mels)}
        np.testing.assert_allclose(facts["mel_filters"], extractor.mel_filters, atol=1e-7, rtol=0)
        for length in (700, extractor.n_samples, extractor.n_samples + 5000):
            audio = (0.3 * rng.standard_normal(length)).astype(np.float32)
            expected = extractor(audio, sampling_rate=16000, return_tensors="np")["input_features"][0]
            np.testing.assert_allclose(recipe["whisper_log_mel"](audio, facts), expected, atol=1e-5, rtol=0)


def test_a_lone_whisper_graph_without_a_fixed_window_is_one_line(tmp_path):
    """No preprocessor_config.json and a symbolic frame count: nothing says how long a window is."""
    import onnx
    from onnx import TensorProto, helper

    features = helper.make_tensor_value_info("input_features", TensorProto.FLOAT, ["batch", 80, "frames"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 80, "frames"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_features"], ["logits"])], "g", [features], [logits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for key, value in (("id2label", {"0": "a"}), ("sampling_rate", 16000)):
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, tmp_path / "model.onnx")
    answer = run_plain(tmp_path, [tmp_path / "x.wav"])
    assert answer.returncode == 2
    assert answer.stderr.count("\n") == 1 and "no fixed frame count" in answer.stderr, answer.stderr


def test_an_export_of_another_model_family_is_refused_in_one_line(cnn_export, tmp_path):
    """Review 3: an AST export crashed in onnxruntime ("Invalid rank for input"), a wav2vec2 one on a short clip
    (predict pads to the encoder's receptive field): their inputs come from transformers' feature extractors."""
    import shutil

    copy = Path(shutil.copytree(cnn_export, tmp_path / "ast"))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "audio-spectrogram-transformer"}))
    answer = run_plain(copy, write_clips(tmp_path / "clips")[:1])
    assert answer.returncode == 2 and answer.stderr.strip().count("\n") == 0, answer.stderr
    assert "'audio-spectrogram-transformer' export" in answer.stderr


def test_the_recipes_window_for_an_outside_whisper_is_its_extractors_as_predicts():
    """A config without max_length_seconds (transformers' own save): predict cuts a file into the extractor's
    30-s windows (`models.inputs.window_seconds_of`); the recipe cut them at its 10-s default (review R3)."""
    import importlib.util

    from transformers import WhisperConfig, WhisperFeatureExtractor

    from hfspeech.models.inputs import window_seconds_of

    spec = importlib.util.spec_from_file_location("plain_onnxruntime", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=30)
    facts = {"n_samples": extractor.n_samples, "sampling_rate": extractor.sampling_rate}
    assert recipe.window_of_extractor(facts, 16000) == window_seconds_of(WhisperConfig(), extractor) == 30.0
