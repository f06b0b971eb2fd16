"""benchmarks/inference.py runs end to end at a tiny size and reports every backend, the long file and the
targets (cold starts and the transformer skipped here: they take minutes; the script's defaults run them).

It runs as its `main(argv)` in this process (no Python start-up with torch and optimum to pay again), on nine
held-out clips, three per class at the tone data's three sampling rates: each backend times every clip one by
one, so sixty clips cost seconds per backend and checked nothing more. On one thread (`--threads 1`): a tiny
CNN's forward takes 2 ms there, and 20-140 ms on two threads whenever the other core is busy (CI's -n 2)."""

from __future__ import annotations

import shutil

from tests.test_benchmarks import run_benchmark


def test_inference_benchmark_reports_every_backend(trained_cnn, tone_folder, tmp_path):
    eval_dir = tmp_path / "eval"
    for clip in sorted(tone_folder.glob("*/*_00[0-2].wav")):  # 16, 8 and 44.1 kHz: the folder cycles its rates
        (eval_dir / clip.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, eval_dir / clip.parent.name / clip.name)
    results = run_benchmark("inference", tmp_path, "--model", str(trained_cnn), "--eval_dir", str(eval_dir),
                            "--calibration_dir", str(tone_folder), "--rounds", "1", "--threads", "1",
                            "--long_minutes", "0.1", "--skip_transformer", "--cold_start_repeats", "0")
    assert results["num_clips"] == 9
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
    assert "load_average_before" in results["machine"] and results["machine"]["threads"] == 1
    assert results["machine"]["onnxruntime"] and results["method"]
