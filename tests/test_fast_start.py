"""A training run's TorchScript twin: `hfspeech train` traces a baseline to `RUN/torchscript`, and `hfspeech
predict RUN` runs that file, without transformers, only while it was traced from the run's current config and
weights (`hfspeech.models.fingerprint`). It must give the PyTorch model's scores, and a stale one must be ignored.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.export.torchscript_export import write_run_twin
from hfspeech.inference.backends import locate_model
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.fingerprint import TRACED_FROM
from tests.conftest import TINY_CNN, synth_clip
from tests.test_startup import imported_after


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, synth_clip("high", np.random.default_rng(3), 16000, 1.3), 16000)
    return path


@pytest.fixture
def run_with_twin(trained_cnn, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run, ignore=shutil.ignore_patterns("checkpoint-*", "torchscript"))
    assert write_run_twin(run) == run / "torchscript" / "model.torchscript.pt"
    return run


def scores(model, clip, **kwargs) -> tuple[str, np.ndarray]:
    classifier = AudioClassifier.from_pretrained(str(model), **kwargs)
    return classifier.backend.name, classifier.classify_file(str(clip)).scores


def test_hfspeech_train_traces_a_baseline_run(tone_folder, tmp_path):
    run = tmp_path / "cnn"
    assert cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(run), "--model_type", "cnn",
                "--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--max_length_seconds", "0.5",
                "--per_device_train_batch_size", "16", "--save_strategy", "no", "--eval_strategy", "no",
                "--load_best_model_at_end", "False"]) == 0
    record = json.loads((run / "torchscript" / TRACED_FROM).read_text())["fingerprint"]
    assert set(record) == {"config.json", "model.safetensors"}
    assert locate_model(str(run))[::2] == ("torchscript", run / "torchscript" / "model.torchscript.pt")


def test_the_twin_gives_the_pytorch_scores_and_pytorch_can_be_forced(run_with_twin, clip):
    twin_backend, twin_scores = scores(run_with_twin, clip)
    eager_backend, eager_scores = scores(run_with_twin, clip, backend="pytorch")
    assert (twin_backend, eager_backend) == ("torchscript", "pytorch")
    np.testing.assert_allclose(twin_scores, eager_scores, atol=1e-5)


@pytest.mark.parametrize("edit", ["weights", "config"])
def test_a_twin_of_other_weights_or_config_is_ignored(run_with_twin, clip, edit):
    if edit == "weights":
        from safetensors.numpy import load_file, save_file

        weights = load_file(run_with_twin / "model.safetensors")
        name = next(name for name in sorted(weights) if name.endswith("classifier.weight"))
        weights[name] = weights[name][::-1].copy()  # the classes' rows swapped: another model
        save_file(weights, run_with_twin / "model.safetensors", metadata={"format": "pt"})
    else:
        config = json.loads((run_with_twin / "config.json").read_text())
        config["id2label"] = {k: f"{v}!" for k, v in config["id2label"].items()}
        config["label2id"] = {f"{k}!": v for k, v in config["label2id"].items()}
        (run_with_twin / "config.json").write_text(json.dumps(config))
    assert locate_model(str(run_with_twin))[0] == "pytorch"
    backend, _ = scores(run_with_twin, clip)
    assert backend == "pytorch"


def test_a_cold_predict_with_the_twin_does_not_import_transformers(run_with_twin, clip):
    code = (f"from hfspeech.cli import main\n"
            f"assert main(['predict', {str(run_with_twin)!r}, {str(clip)!r}, '--json']) == 0")
    assert imported_after(code) == ["torch"]


def test_only_baselines_get_a_twin(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    assert write_run_twin(tmp_path) is None and not (tmp_path / "torchscript").exists()
