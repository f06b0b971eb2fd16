"""Inference benchmark: PyTorch fp32 vs ONNX fp32 vs ONNX int8 (dynamic, int8 weights with float compute, and
static when calibration data is known), on the same clips, on this machine, in one run.

    python benchmarks/inference.py                                  # trains the demo CNN first (~2 min, 2 cores)
    python benchmarks/inference.py --model runs/demo/model          # an existing run (keyword labels)
    python benchmarks/inference.py --model runs/kws --eval_dir data/test --calibration_dir data/train

For each model it reports the file size on disk, the latency of one clip (p50/p95 over every held-out clip,
several rounds), the throughput in batches of 16, the accuracy on the held-out clips and the top-1 agreement
with PyTorch fp32; ratios are against PyTorch fp32. Times are for the model call alone (the feature extractor,
the same numpy code for all, is run once beforehand), with the same number of threads for torch and
onnxruntime, and the backends take turns round by round so that a busy machine slows them all alike.
Held-out clips default to keyword clips generated with a seed no training run uses. Results also go to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _checks import existing_model, run_script, writable_path  # noqa: E402  (first: no downloads)
from _common import machine  # noqa: E402
from _inference_parts import METHOD, cold_start_seconds, load_average, long_file_speed, write_long_file  # noqa: E402
from _transformer_int8 import file_size_mb, one_second_clips, transformer_variants  # noqa: E402

from hfspeech.cli import DEMO_TRAINING_FLAGS
from hfspeech.cli.flags import positive
from hfspeech.data.audio import decode_audio, find_audio_files
from hfspeech.errors import UsageError
from hfspeech.inference.backends import OnnxBackend
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.inputs import extract_features
from hfspeech.synthetic.spoken import generate_keyword_dataset

BATCH_SIZE = 16
UNSEEN_SEED = 2026  # the demo's "never seen" seed: neither training data nor splits use it


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints tables; writes JSON "
                                     "(--output): the machine and threads, the settings, every backend's numbers "
                                     "and its ratios to PyTorch fp32, the long file, cold starts, the targets.")
    parser.add_argument("--model", help="a training run's folder (default: train the demo CNN into WORK_DIR/model)")
    parser.add_argument("--work_dir", default="runs/benchmark", help="data, model, exports and results go here")
    parser.add_argument("--eval_dir", help="held-out audio folder DIR/<label>/*.wav (default: generated keywords)")
    parser.add_argument("--clips_per_keyword", type=positive(int), default=25,
                        help="generated held-out clips per keyword")
    parser.add_argument("--calibration_dir", help="audio folder for static int8 with --model (without it: no "
                        "static int8 row); without --model the demo data it trains on is used")
    parser.add_argument("--rounds", type=positive(int), default=3, help="latency passes over the held-out clips")
    parser.add_argument("--threads", type=positive(int), default=os.cpu_count(),
                        help="threads for torch and onnxruntime")
    parser.add_argument("--long_minutes", type=positive(float), default=10.0, help="length of the long file (minutes)")
    parser.add_argument("--skip_transformer", action="store_true", help="skip the Wav2Vec2-base-sized model")
    parser.add_argument("--cold_start_repeats", type=int, default=3, help="fresh processes per command (0: skip)")
    parser.add_argument("--transformer_clips", type=positive(int), default=48,
                        help="held-out clips for the transformer")
    parser.add_argument("--output", help="JSON results (default: WORK_DIR/inference_benchmark.json)")
    return parser.parse_args(argv)


def train_demo_model(work_dir: Path) -> tuple[Path, Path]:
    """The `hfspeech demo` model (same data, same flags), unless a previous run already left it."""
    from hfspeech.cli.training import train  # as `hfspeech train`: the run is traced to model/torchscript too
    from hfspeech.export.torchscript_export import write_run_twin

    data_dir, model_dir = work_dir / "data", work_dir / "model"
    generate_keyword_dataset(data_dir, clips_per_keyword=100)
    if not (model_dir / "metrics.json").is_file():
        train(["--data_dir", str(data_dir), "--output_dir", str(model_dir), "--overwrite_output_dir",
               *DEMO_TRAINING_FLAGS])
    elif not (model_dir / "torchscript").is_dir():  # a run left by an older hfspeech
        write_run_twin(model_dir)
    return model_dir, data_dir


def load_clips(folder: Path, sampling_rate: int, known_labels: set[str]) -> tuple[list[np.ndarray], list[str]]:
    files = find_audio_files(folder)
    labels = [p.parent.name for p in files]
    unknown = sorted(set(labels) - known_labels)
    if not files or unknown:
        raise SystemExit(f"{folder}: needs audio in <label>/ subfolders with the model's labels "
                         f"({sorted(known_labels)}); found {len(files)} files, unknown labels {unknown}")
    return [decode_audio(str(p), sampling_rate) for p in files], labels


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def benchmark(classifiers: dict[str, AudioClassifier], clips: list[np.ndarray], rounds: int) -> dict[str, dict]:
    extractor = next(iter(classifiers.values())).feature_extractor  # padded as the classifier pads (Whisper: its window)
    singles = [dict(extract_features(extractor, [clip], return_tensors="np")) for clip in clips]
    batches = [dict(extract_features(extractor, clips[i : i + BATCH_SIZE], return_tensors="np"))
               for i in range(0, len(clips), BATCH_SIZE)]
    latencies = {name: [] for name in classifiers}
    batch_times = {name: [] for name in classifiers}
    for name, classifier in classifiers.items():  # warm-up: first calls allocate and pick kernels
        for inputs in singles[:5] + batches[:1]:
            classifier.backend.logits(inputs)
    for _ in range(rounds):
        for name, classifier in classifiers.items():
            latencies[name] += [timed(lambda: classifier.backend.logits(inputs)) for inputs in singles]
            batch_times[name].append(sum(timed(lambda: classifier.backend.logits(inputs)) for inputs in batches))
    return {name: {"p50_ms": 1e3 * float(np.percentile(latencies[name], 50)),
                   "p95_ms": 1e3 * float(np.percentile(latencies[name], 95)),
                   "throughput_clips_per_s": len(clips) / float(np.median(batch_times[name]))}
            for name in classifiers}


def print_table(rows: list[dict], title: str) -> None:
    base = rows[0]
    print(f"\n{title}\n{'model':<22}{'size MB':>9}{'(x)':>7}{'p50 ms':>9}{'(x)':>7}{'p95 ms':>9}{'clips/s':>10}"
          f"{'(x)':>7}{'accuracy':>10}{'agree':>8}")
    for row in rows:
        throughput = row["throughput_clips_per_s"]
        accuracy = f"{row['accuracy']:>10.3f}" if row.get("accuracy") is not None else f"{'-':>10}"
        print(f"{row['name']:<22}{row['size_mb']:>9.3f}{row['size_mb'] / base['size_mb']:>7.2f}"
              f"{row['p50_ms']:>9.2f}{base['p50_ms'] / row['p50_ms']:>7.2f}{row['p95_ms']:>9.2f}"
              f"{throughput:>10.1f}{throughput / base['throughput_clips_per_s']:>7.2f}"
              f"{accuracy}{row['agreement_with_pytorch']:>8.3f}")
    print("(x): against PyTorch fp32: size ratio (lower is smaller), p50 speed-up and throughput ratio (higher is "
          "faster)")


def table_rows(classifiers: dict[str, AudioClassifier], files: dict[str, Path], clips: list[np.ndarray],
               labels: Optional[list[str]], rounds: int) -> list[dict]:
    """Size, latency, throughput, accuracy (when labels are known) and agreement with the first classifier."""
    speed = benchmark(classifiers, clips, rounds)
    reference_top1 = next(iter(classifiers.values())).predict_proba(clips).argmax(1)
    rows = []
    for name, classifier in classifiers.items():
        top1 = classifier.predict_proba(clips).argmax(1)
        accuracy = None if labels is None else \
            float(np.mean([classifier.id2label[int(i)] == label for i, label in zip(top1, labels)]))
        rows.append({"name": name, "file": str(files[name]), "size_mb": file_size_mb(files[name]), **speed[name],
                     "accuracy": accuracy, "agreement_with_pytorch": float(np.mean(top1 == reference_top1))})
    base = rows[0]
    for row in rows:  # the ratios the table prints, measured in this run against the first row (PyTorch fp32)
        row["vs_pytorch"] = {"size": row["size_mb"] / base["size_mb"], "p50_speedup": base["p50_ms"] / row["p50_ms"],
                             "throughput": row["throughput_clips_per_s"] / base["throughput_clips_per_s"]}
    return rows


def cnn_classifiers(model_dir: Path, work_dir: Path, calibration_dir, threads: int):
    """PyTorch, TorchScript, ONNX fp32 and int8 (dynamic; static when calibration data is known) of one model."""
    import onnxruntime
    import torch

    from hfspeech.export import export_onnx, export_torchscript, quantize_int8  # seconds to import: not for --help

    onnx_dir = work_dir / "onnx"
    dynamic = export_onnx(model_dir, onnx_dir, quantize="int8")
    weights_only = export_onnx(model_dir, work_dir / "onnx-int8-weights", quantize="int8_weights")
    files = {"PyTorch fp32": model_dir, "TorchScript fp32": export_torchscript(model_dir, work_dir / "torchscript"),
             "ONNX fp32": onnx_dir / "model.onnx", "ONNX int8 dynamic": dynamic, "ONNX int8 weights": weights_only}
    if calibration_dir:
        files["ONNX int8 static"] = quantize_int8(onnx_dir / "model.onnx", work_dir / "onnx-static",
                                                  calibration_dir=calibration_dir)
    reference = AudioClassifier.from_pretrained(str(model_dir), device=torch.device("cpu"), batch_size=BATCH_SIZE,
                                                backend="pytorch")  # not the run's TorchScript twin
    classifiers = {"PyTorch fp32": reference}
    for name, path in list(files.items())[1:]:
        classifiers[name] = AudioClassifier.from_pretrained(str(path), batch_size=BATCH_SIZE)
        if isinstance(classifiers[name].backend, OnnxBackend):  # the same thread count as torch
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            classifiers[name].backend = OnnxBackend(path, reference.config, options)
    return classifiers, files


def transformer_rows(work_dir: Path, clips: list[np.ndarray], rounds: int, threads: int) -> list[dict]:
    import onnxruntime
    import torch

    files = transformer_variants(work_dir)
    reference = AudioClassifier.from_pretrained(str(files["PyTorch fp32"]), device=torch.device("cpu"),
                                                batch_size=BATCH_SIZE)
    classifiers = {"PyTorch fp32": reference}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    for name in ("ONNX fp32", "ONNX int8"):
        classifiers[name] = AudioClassifier(OnnxBackend(files[name], reference.config, options),
                                            reference.feature_extractor, batch_size=BATCH_SIZE)
    return table_rows(classifiers, files, one_second_clips(clips), None, rounds)


def cold_starts(files: dict[str, Path], clip: Path, repeats: int) -> dict:
    """`hfspeech predict` on one clip in a fresh process, per backend. The TorchScript export runs on PyTorch
    without transformers; so does the run folder when it holds a current TorchScript twin (`hfspeech train`
    writes one for the baselines). `--backend pytorch` pays for `transformers.modeling_utils` on import."""
    if repeats < 1:
        return {}
    run, clip = str(files["PyTorch fp32"]), str(clip)
    commands = {"hfspeech --help": ["--help"], "predict ONNX": ["predict", str(files["ONNX fp32"].parent), clip],
                "predict TorchScript": ["predict", str(files["TorchScript fp32"].parent), clip],
                "predict PyTorch": ["predict", run, clip],
                "predict PyTorch --backend pytorch": ["predict", run, clip, "--backend", "pytorch"]}
    return cold_start_seconds(commands, repeats)


def targets(rows: list[dict], long_file: dict, starts: dict, transformer: list[dict]) -> dict:
    """The issue's targets, as ratios measured in this run (and absolute start-up times)."""
    by_name = {row["name"]: row for row in rows}
    base, fp32, dynamic = by_name["PyTorch fp32"], by_name["ONNX fp32"], by_name["ONNX int8 dynamic"]
    int8 = by_name.get("ONNX int8 static", dynamic)  # integer int8 for speed is the calibrated one
    speedup = lambda row: min(row["throughput_clips_per_s"] / base["throughput_clips_per_s"],  # noqa: E731
                              base["p50_ms"] / row["p50_ms"])
    met = {"cnn_onnx_fp32_1.3x": speedup(fp32) >= 1.3, "cnn_onnx_int8_1.5x": speedup(int8) >= 1.5,
           "cnn_onnx_int8_dynamic_1.5x": speedup(dynamic) >= 1.5,
           "cnn_onnx_int8_weights_1.5x": speedup(by_name["ONNX int8 weights"]) >= 1.5,
           "long_file_100x_real_time": long_file["ONNX fp32"]["real_time_factor"] >= 100}
    if starts:
        met.update({"help_0.5s": starts["hfspeech --help"]["median_s"] <= 0.5,
                    "predict_onnx_1.5s": starts["predict ONNX"]["median_s"] <= 1.5,
                    "predict_pytorch_3s": starts["predict PyTorch"]["median_s"] <= 3.0,
                    "predict_pytorch_eager_3s": starts["predict PyTorch --backend pytorch"]["median_s"] <= 3.0,
                    "predict_torchscript_3s": starts["predict TorchScript"]["median_s"] <= 3.0})
    if transformer:
        base_t, int8_t = transformer[0], transformer[-1]
        met["transformer_int8_2x_throughput"] = \
            int8_t["throughput_clips_per_s"] >= 2 * base_t["throughput_clips_per_s"]
        met["transformer_int8_3.5x_smaller"] = base_t["size_mb"] >= 3.5 * int8_t["size_mb"]
    return met


def main(argv=None) -> dict:
    args = parse_args(argv)
    work_dir, output = check_paths(args)
    import torch

    torch.set_num_threads(args.threads)
    model_dir, calibration_dir = (Path(args.model), args.calibration_dir) if args.model else train_demo_model(work_dir)
    classifiers, files = cnn_classifiers(model_dir, work_dir, calibration_dir, args.threads)
    reference = classifiers["PyTorch fp32"]
    eval_dir = Path(args.eval_dir) if args.eval_dir else generate_keyword_dataset(
        work_dir / "unseen", clips_per_keyword=args.clips_per_keyword, seed=UNSEEN_SEED, progress=False)
    clips, labels = load_clips(eval_dir, reference.sampling_rate, set(reference.id2label.values()))
    results = {"machine": {**machine(), "threads": args.threads, "load_average_before": load_average()},
               "model": str(model_dir), "eval_dir": str(eval_dir), "num_clips": len(clips), "batch_size": BATCH_SIZE,
               "rounds": args.rounds, "long_minutes": args.long_minutes, "cold_start_repeats": args.cold_start_repeats,
               "method": METHOD}
    results["cnn"] = rows = table_rows(classifiers, files, clips, labels, args.rounds)
    print_table(rows, f"{model_dir} on {len(clips)} held-out clips")
    long_path = write_long_file(work_dir / f"long_{args.long_minutes:g}min.wav", clips, args.long_minutes)
    int8_name = "ONNX int8 static" if "ONNX int8 static" in files else "ONNX int8 dynamic"
    long_names = ("PyTorch fp32", "ONNX fp32", int8_name)
    results["long_file"] = long_file = long_file_speed({n: classifiers[n] for n in long_names}, long_path)
    results["cold_start"] = starts = cold_starts(files, find_audio_files(eval_dir)[0], args.cold_start_repeats)
    results["transformer"] = transformer = [] if args.skip_transformer else \
        transformer_rows(work_dir, clips[: args.transformer_clips], args.rounds, args.threads)
    if transformer:
        print_table(transformer, "Wav2Vec2-base-sized classifier, random weights, 1-s clips (agreement: near-tied "
                                 "random logits)")
    results["meets_targets"] = targets(rows, long_file, starts, transformer)
    results["machine"]["load_average_after"] = load_average()
    print_summary(long_file, starts, results)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {output}")
    return results


def print_summary(long_file: dict, starts: dict, results: dict) -> None:
    print("\nlong file:", ", ".join(f"{name} {r['real_time_factor']:.0f}x real time ({r['seconds']:.1f} s for "
                                    f"{r['audio_seconds']:.0f} s, {r['num_windows']} windows)"
                                    for name, r in long_file.items()))
    print("cold start:", ", ".join(f"{name} {r['median_s']:.2f} s (best {r['best_s']:.2f})"
                                   for name, r in starts.items()))
    machine = results["machine"]
    print(f"load average {machine['load_average_before']:.1f} before, {machine['load_average_after']:.1f} after; "
          f"targets: {results['meets_targets']}")


def check_paths(args) -> tuple[Path, Path]:
    """The folders it reads are there and the ones it writes can be written, before minutes of work."""
    if args.model:
        existing_model(args.model)
    for flag in ("eval_dir", "calibration_dir"):
        folder = getattr(args, flag)
        if folder and not Path(folder).is_dir():
            raise UsageError(f"--{flag} {folder}: not a folder")
    work_dir = writable_path(args.work_dir, "--work_dir", folder=True)
    return work_dir, writable_path(args.output or work_dir / "inference_benchmark.json", "--output")


if __name__ == "__main__":
    run_script(main)
