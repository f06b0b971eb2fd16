"""An export prints its result, not torch's notes on its own constant folding (three UserWarnings per CNN export)."""

from __future__ import annotations

import warnings

from conftest import save_random_baseline
from hfspeech.export import export_onnx


def test_onnx_export_of_a_cnn_raises_no_constant_folding_warnings(tmp_path):
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4, 8], n_mels=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(model, tmp_path / "onnx")
    assert (tmp_path / "onnx" / "model.onnx").is_file()
    assert not [w for w in caught if "Constant folding" in str(w.message)]
