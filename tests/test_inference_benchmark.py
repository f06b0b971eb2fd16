"""benchmarks/inference.py runs end to end at a tiny size and reports every backend, the long file and the
targets (cold starts and the transformer skipped here: they take minutes; the script's defaults run them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"


def test_inference_benchmark_reports_every_backend(trained_cnn, tone_folder, tmp_path):
    output = tmp_path / "inference.json"
    result = subprocess.run([sys.executable, str(BENCHMARK), "--model", str(trained_cnn), "--eval_dir",
                             str(tone_folder), "--calibration_dir", str(tone_folder), "--work_dir", str(tmp_path / "w"),
                             "--rounds", "1", "--long_minutes", "0.1", "--skip_transformer", "--cold_start_repeats",
                             "0", "--output", str(output)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    rows = {row["name"]: row for row in results["cnn"]}
    assert list(rows) == ["PyTorch fp32", "TorchScript fp32", "ONNX fp32", "ONNX int8 dynamic", "ONNX int8 weights",
                          "ONNX int8 static"]
    for row in rows.values():
        assert row["throughput_clips_per_s"] > 0 and row["p95_ms"] >= row["p50_ms"] > 0 and row["size_mb"] > 0
        assert row["accuracy"] > 0.8 and row["agreement_with_pytorch"] > 0.9
        # the ratios the table prints, in the file too: against PyTorch fp32 of the same run
        base = rows["PyTorch fp32"]
        assert row["vs_pytorch"]["throughput"] == row["throughput_clips_per_s"] / base["throughput_clips_per_s"]
        assert row["vs_pytorch"]["p50_speedup"] == base["p50_ms"] / row["p50_ms"]
    assert rows["ONNX fp32"]["agreement_with_pytorch"] == 1.0
    for run in results["long_file"].values():
        assert run["audio_seconds"] == 6.0 and run["num_windows"] == 23 and run["real_time_factor"] > 0
    assert set(results["meets_targets"]) == {"cnn_onnx_fp32_1.3x", "cnn_onnx_int8_1.5x", "cnn_onnx_int8_dynamic_1.5x",
                                             "cnn_onnx_int8_weights_1.5x",
                                             "long_file_100x_real_time"}
    assert "load_average_before" in results["machine"] and results["machine"]["threads"] >= 1
    assert results["machine"]["onnxruntime"] and results["method"]
