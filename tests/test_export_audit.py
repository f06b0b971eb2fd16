"""What the exports give, audited: a BC-ResNet export (ONNX or TorchScript) runs in a fresh process, as `hfspeech
predict` starts one, and scores a clip as the PyTorch model does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import save_random_baseline, synth_clip
from hfspeech.export import export_onnx, export_torchscript
from hfspeech.features.waveform import WaveformPreprocessor
from hfspeech.inference.classifier import AudioClassifier

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")

LABELS = ["low", "high", "noise"]
TINY_BCRESNET = dict(width_multiplier=0.5, blocks_per_stage=[1, 1, 1, 1], n_mels=20, apply_spec_augment=False,
                     max_length_seconds=0.5)
# `hfspeech predict` as a user starts it: a new interpreter, in which nothing has registered the baselines with
# transformers' Auto classes yet (the test process has, which is how the BC-ResNet failure below went unseen).
FRESH_PREDICT = "import sys; from hfspeech.cli import main; sys.exit(main(['predict', *sys.argv[1:]]))"


@pytest.fixture(scope="module")
def bcresnet(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("bcresnet") / "model", "bcresnet", LABELS, 0.5,
                                **TINY_BCRESNET)


@pytest.fixture(scope="module")
def clip_8k(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "high.wav"
    sf.write(path, synth_clip("high", np.random.default_rng(3), 8000), 8000)
    return path


def fresh_predict(model: Path, clip: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", FRESH_PREDICT, str(model), str(clip), "--json", "--top_k", "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_bcresnet_export_predicts_in_a_fresh_process_like_pytorch(bcresnet, clip_8k, tmp_path, fmt):
    """Its preprocessor_config.json names BCResNetAudioFeatureExtractor, which numpy's preprocessor did not know:
    the loader fell back to transformers' AutoFeatureExtractor, unregistered in a fresh process, and every
    `hfspeech predict` of a BC-ResNet export (and of a BC-ResNet run, through its TorchScript twin) stopped with
    "Unrecognized feature extractor"."""
    export = (export_onnx if fmt == "onnx" else export_torchscript)(bcresnet, tmp_path / fmt)
    expected = AudioClassifier.from_pretrained(str(bcresnet), backend="pytorch").classify_file(str(clip_8k), top_k=3)
    got = fresh_predict(export.parent, clip_8k)
    got = got[0] if isinstance(got, list) else got
    labels = [entry["label"] for entry in got["predictions"]]
    scores = [entry["score"] for entry in got["predictions"]]
    assert labels == expected.labels
    assert np.allclose(scores, expected.scores, atol=1e-4)
    assert WaveformPreprocessor.from_pretrained(export.parent) is not None  # numpy's: no transformers import


def test_numpy_preprocessing_stands_in_for_every_baseline_extractor(tmp_path):
    """The next baseline must not fail as BC-ResNet did: each one's saved extractor is read by numpy's."""
    from hfspeech.models import BASELINE_MODELS

    for family, spec in BASELINE_MODELS.items():
        spec.feature_extractor_class().save_pretrained(tmp_path / family)
        assert WaveformPreprocessor.from_pretrained(tmp_path / family) is not None, family

