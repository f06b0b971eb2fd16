"""A TorchScript export traces the model once and checks it on other clip lengths: torch's own `check_trace`
re-traced and re-ran it on the trace's own batch (about 0.6 s of a baseline's 1.5-s export, which every `hfspeech
train` makes), a check the export's three other lengths already make stronger."""

from __future__ import annotations

import json

import torch

from conftest import save_random_baseline
from hfspeech.export.torchscript_export import TORCHSCRIPT_FILE, export_torchscript
from hfspeech.models.cnn import CNNAudioForAudioClassification


def test_the_export_runs_the_model_twice_and_its_file_follows_other_lengths(tmp_path, monkeypatch):
    folder = save_random_baseline(tmp_path / "cnn", "cnn", ["no", "yes"], 0.5, **json.loads(
        '{"conv_channels": [4, 8], "n_mels": 16}'))
    calls, forward = [], CNNAudioForAudioClassification.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(CNNAudioForAudioClassification, "forward", counted)
    path = export_torchscript(folder, tmp_path / "ts")
    assert len(calls) == 2  # the trace, and the eager run its other lengths are compared with (it was 4)
    monkeypatch.undo()
    traced = torch.jit.load(str(path))
    assert path.name == TORCHSCRIPT_FILE
    waveform = torch.randn(1, 12345)
    eager = CNNAudioForAudioClassification.from_pretrained(folder).eval()
    from hfspeech.models.cnn import CNNAudioFeatureExtractor

    features = CNNAudioFeatureExtractor.from_pretrained(folder)(waveform.numpy(), sampling_rate=16000,
                                                                return_tensors="pt")
    with torch.no_grad():
        expected = eager(**features).logits
        got = traced(*features.values())
    assert torch.allclose(got, expected, atol=1e-4)
