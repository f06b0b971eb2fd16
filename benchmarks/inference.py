"""Inference benchmark: PyTorch fp32 vs ONNX fp32 vs ONNX int8 (dynamic, and static when calibration data is
known), on the same clips, on this machine, in one run.

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
import platform
import time
from pathlib import Path

import numpy as np

from hfspeech.cli import DEMO_TRAINING_FLAGS
from hfspeech.data.audio import decode_audio
from hfspeech.data.demo import generate_keyword_dataset
from hfspeech.data.loading import find_audio_files
from hfspeech.export import export_onnx, quantize_int8
from hfspeech.inference.backends import OnnxBackend
from hfspeech.inference.classifier import AudioClassifier

BATCH_SIZE = 16
UNSEEN_SEED = 2026  # the demo's "never seen" seed: neither training data nor splits use it


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a training run's folder (default: train the demo CNN into WORK_DIR/model)")
    parser.add_argument("--work_dir", default="runs/benchmark", help="data, model, exports and results go here")
    parser.add_argument("--eval_dir", help="held-out audio folder DIR/<label>/*.wav (default: generated keywords)")
    parser.add_argument("--clips_per_keyword", type=int, default=25, help="generated held-out clips per keyword")
    parser.add_argument("--calibration_dir", help="audio folder for static int8 (default: the data it trained on)")
    parser.add_argument("--rounds", type=int, default=3, help="latency passes over the held-out clips")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for torch and onnxruntime")
    parser.add_argument("--output", help="JSON results (default: WORK_DIR/inference_benchmark.json)")
    return parser.parse_args(argv)


def train_demo_model(work_dir: Path) -> tuple[Path, Path]:
    """The `hfspeech demo` model (same data, same flags), unless a previous run already left it."""
    from hfspeech.training.run import main as train

    data_dir, model_dir = work_dir / "data", work_dir / "model"
    generate_keyword_dataset(data_dir, clips_per_keyword=100)
    if not (model_dir / "metrics.json").is_file():
        train(["--data_dir", str(data_dir), "--output_dir", str(model_dir), "--overwrite_output_dir",
               *DEMO_TRAINING_FLAGS])
    return model_dir, data_dir


def load_clips(folder: Path, sampling_rate: int, known_labels: set[str]) -> tuple[list[np.ndarray], list[str]]:
    files = find_audio_files(folder)
    labels = [p.parent.name for p in files]
    unknown = sorted(set(labels) - known_labels)
    if not files or unknown:
        raise SystemExit(f"{folder}: needs audio in <label>/ subfolders with the model's labels "
                         f"({sorted(known_labels)}); found {len(files)} files, unknown labels {unknown}")
    return [decode_audio(str(p), sampling_rate) for p in files], labels


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def benchmark(classifiers: dict[str, AudioClassifier], clips: list[np.ndarray], rounds: int) -> dict[str, dict]:
    extractor = next(iter(classifiers.values())).feature_extractor
    rate = extractor.sampling_rate
    singles = [dict(extractor([clip], sampling_rate=rate, return_tensors="np")) for clip in clips]
    batches = [dict(extractor(clips[i : i + BATCH_SIZE], sampling_rate=rate, padding="longest", return_tensors="np"))
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


def print_table(rows: list[dict]) -> None:
    base = rows[0]
    print(f"\n{'model':<22}{'size MB':>9}{'(x)':>7}{'p50 ms':>9}{'(x)':>7}{'p95 ms':>9}{'clips/s':>10}{'(x)':>7}"
          f"{'accuracy':>10}{'agree':>8}")
    for row in rows:
        throughput = row["throughput_clips_per_s"]
        print(f"{row['name']:<22}{row['size_mb']:>9.3f}{row['size_mb'] / base['size_mb']:>7.2f}"
              f"{row['p50_ms']:>9.2f}{row['p50_ms'] / base['p50_ms']:>7.2f}{row['p95_ms']:>9.2f}"
              f"{throughput:>10.1f}{throughput / base['throughput_clips_per_s']:>7.2f}"
              f"{row['accuracy']:>10.3f}{row['agreement_with_pytorch']:>8.3f}")
    print("(x): ratio to PyTorch fp32 (size, p50 latency: lower is better; throughput: higher is better)")


def main(argv=None) -> dict:
    args = parse_args(argv)
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    work_dir = Path(args.work_dir)
    model_dir, calibration_dir = (Path(args.model), args.calibration_dir) if args.model else train_demo_model(work_dir)
    onnx_dir = work_dir / "onnx"
    dynamic = export_onnx(model_dir, onnx_dir, quantize="int8")
    models = {"PyTorch fp32": model_dir, "ONNX fp32": onnx_dir / "model.onnx", "ONNX int8 dynamic": dynamic}
    if calibration_dir:
        models["ONNX int8 static"] = quantize_int8(onnx_dir / "model.onnx", work_dir / "onnx-static",
                                                   calibration_dir=calibration_dir)

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    reference = AudioClassifier.from_pretrained(str(model_dir), device=torch.device("cpu"), batch_size=BATCH_SIZE)
    classifiers = {"PyTorch fp32": reference}
    for name, path in list(models.items())[1:]:
        classifiers[name] = AudioClassifier(OnnxBackend(path, reference.config, options), reference.feature_extractor,
                                            batch_size=BATCH_SIZE)

    eval_dir = Path(args.eval_dir) if args.eval_dir else generate_keyword_dataset(
        work_dir / "unseen", clips_per_keyword=args.clips_per_keyword, seed=UNSEEN_SEED, progress=False)
    clips, labels = load_clips(eval_dir, reference.sampling_rate, set(reference.id2label.values()))
    speed = benchmark(classifiers, clips, args.rounds)
    reference_top1 = reference.predict_proba(clips).argmax(1)
    rows = []
    for name, classifier in classifiers.items():
        top1 = classifier.predict_proba(clips).argmax(1)
        path = models[name] / "model.safetensors" if name == "PyTorch fp32" else models[name]
        rows.append({"name": name, "file": str(path), "size_mb": path.stat().st_size / 1e6, **speed[name],
                     "accuracy": float(np.mean([classifier.id2label[int(i)] == l for i, l in zip(top1, labels)])),
                     "agreement_with_pytorch": float(np.mean(top1 == reference_top1))})
    results = {
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(),
                    "threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__},
        "model": str(model_dir), "eval_dir": str(eval_dir), "num_clips": len(clips), "batch_size": BATCH_SIZE,
        "rounds": args.rounds, "results": rows,
    }
    print_table(rows)
    output = Path(args.output or work_dir / "inference_benchmark.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\n{len(clips)} held-out clips from {eval_dir}; results: {output}")
    return results


if __name__ == "__main__":
    main()
