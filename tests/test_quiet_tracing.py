"""Tracing a baseline to TorchScript (every `hfspeech train` of one does) logs no line about a loss it never uses."""

import logging

import pytest

from conftest import save_random_baseline
from hfspeech.export.torchscript_export import export_torchscript


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("family", ["cnn", "lstm", "bcresnet"])
def test_tracing_a_baseline_logs_nothing_about_a_causal_lm_loss(family, tmp_path):
    from transformers.utils import logging as transformers_logging

    logging.Logger.warning_once.cache_clear()  # a line logged once per process may have gone out already
    lines = _Lines()
    transformers_logging.get_logger("transformers").addHandler(lines)
    try:
        model = save_random_baseline(tmp_path / family, family, ["a", "b"], 0.02)
        export_torchscript(model, tmp_path / "traced")
    finally:
        transformers_logging.get_logger("transformers").removeHandler(lines)
    assert (tmp_path / "traced").is_dir()
    assert not [line for line in lines.lines if "loss" in line.lower()], lines.lines


@pytest.mark.parametrize("family", ["cnn", "bcresnet"])
def test_tracing_a_cnn_or_bcresnet_warns_nothing(family, tmp_path):
    """Their forward passes trace without a TracerWarning (a shape compared in Python while tracing is one,
    printed by every export and every training run's TorchScript twin); the LSTM's come from torch's own rnn.py."""
    import warnings

    import torch

    model = save_random_baseline(tmp_path / family, family, ["a", "b"], 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        export_torchscript(model, tmp_path / "traced")
    assert (tmp_path / "traced").is_dir()
