"""Where the docs said one thing and the code did another (the docs audit of session 41):

- `AudioClassifier.from_pretrained(RUN, device="cuda")` on a machine without a GPU is the one-line `UsageError`
  of docs/inference.md, as `hfspeech predict RUN --device cuda` is; a baseline run's TorchScript twin ran on the
  CPU instead ("device=cuda ignored");
- on a Mac (MPS) a baseline run runs from its weights on the Apple GPU, as docs/install.md says, not from its
  CPU-only twin;
- a `.onnx` copied without its JSON files is refused saying what to copy (its metadata_props are for plain scripts);
- `benchmarks/pretrained.py --resume` of a JSON object that is not a results file is refused before any work.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hfspeech.cli import main as cli
from hfspeech.errors import UsageError
from hfspeech.inference import backends
from hfspeech.inference.backends import locate_model
from hfspeech.inference.classifier import AudioClassifier
from tests.conftest import synth_clip
from tests.test_fast_start import run_with_twin  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


@NO_CUDA
@pytest.mark.parametrize("device", ["cuda", torch.device("cuda", 0), 0])
def test_from_pretrained_refuses_a_missing_device_for_a_run_with_a_twin(run_with_twin, device):
    with pytest.raises(UsageError, match="device='cuda(:0)?': no CUDA device here"):
        AudioClassifier.from_pretrained(str(run_with_twin), device=device)


@pytest.mark.parametrize("device", ["cpu", -1, torch.device("cpu"), "cpu:0", torch.device("cpu", 0), "-1",
                                    np.int64(-1)])
def test_the_cpu_still_runs_the_twin(run_with_twin, device, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, synth_clip("high", np.random.default_rng(3), 16000, 1.0), 16000)
    classifier = AudioClassifier.from_pretrained(str(run_with_twin), device=device)
    assert classifier.backend.name == "torchscript"
    assert np.isfinite(classifier.classify_file(str(clip)).scores).all()


def test_with_an_apple_gpu_a_run_runs_from_its_weights_not_its_twin(run_with_twin, monkeypatch):
    assert locate_model(str(run_with_twin))[0] == "torchscript"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backends, "mps_available", lambda: True)  # a Mac: `pick_device` would choose MPS
    assert locate_model(str(run_with_twin)) == ("pytorch", str(run_with_twin), None)


def test_an_onnx_file_copied_alone_is_refused_saying_what_to_copy(trained_cnn, tmp_path, capsys):
    from hfspeech.export import export_onnx

    export_onnx(str(trained_cnn), tmp_path / "onnx")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "onnx" / "model.onnx", alone)
    assert cli(["predict", str(alone / "model.onnx"), "clip.wav"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {alone}: no config.json (labels) beside model.onnx"), error
    assert "not the copy in its metadata_props" in error and "copy them with it" in error
    assert len(error.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["{}", '{"machine": {"cpu": "x"}}', '{"results": []}'])
def test_resume_of_a_json_object_without_runs_is_refused(tmp_path, text):
    sys.path.insert(0, str(ROOT))
    from benchmarks import pretrained

    output = tmp_path / "other.json"
    output.write_text(text)
    with pytest.raises(UsageError, match=f"--output {output}: not a results file of this benchmark"):
        pretrained.earlier_results(output)
    output.write_text('{"runs": {}}')
    assert pretrained.earlier_results(output) == {"runs": {}}
