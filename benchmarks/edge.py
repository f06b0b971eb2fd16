"""Edge-size models on voices they never heard: BC-ResNet-1/-3/-8, the CNN and the LSTM, from scratch and
distilled from a fine-tuned Whisper tiny.en teacher, with their int8 ONNX size, latency and accuracy.

FSDD (../shared/data/fsdd), leave one speaker out, the folds of `benchmarks/pretrained.py` (`prepare_fsdd`).
Every run is `hfspeech train` or `hfspeech distill` in its own process with one torch thread, timed; then the
model the run kept (the last epoch's with `edge.args`, which turns off `load_best_model_at_end`) is exported to
int8 ONNX (`hfspeech.export`) and that file's size, its latency on one 1-s clip (one thread, median of 50) and
its accuracy on the held-out speaker are measured.

    python benchmarks/edge.py --runs bcresnet-3 bcresnet-3-distilled --folds george
    python benchmarks/edge.py --runs bcresnet-1-fm bcresnet-1+espeak   # function matching; espeak-ng voices added
    python benchmarks/edge.py --runs bcresnet-3+espeak240 --extra --num_train_epochs 8   # 2,400 clips, same steps
    python benchmarks/edge.py --report runs/bench-edge/edge.json     # the table, mean ± spread over folds

Teachers: `--teacher_root DIR` holds one fine-tuned model per held-out speaker (`DIR/<speaker>/`, complete when
`DIR/<speaker>/DONE` exists); a teacher must never have heard its fold's test speaker, which the benchmark
checks against the teacher's own test split (DONE or metrics.json). Results are appended run by run to
--output, and `--resume` skips runs already there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._checks import read_reports, run_script  # noqa: E402  (first: no downloads)
from benchmarks.pretrained import (  # noqa: E402
    RECIPES, SPEAKERS, pending_fsdd_runs, record, run_in_process, start_results,
)

WIDTH = {"bcresnet-1": 1, "bcresnet-3": 3, "bcresnet-4": 4, "bcresnet-8": 8}
# `-fm`: function matching (hfspeech distill --teacher_on_augmented): the teacher labels every augmented, mixed
# batch the student sees; soft loss only, at T=4, with mixup so the targets between the digits are taught too.
FUNCTION_MATCHING = ["--teacher_on_augmented", "True", "--distill_temperature", "4", "--distill_weight", "1.0",
                     "--mixup_alpha", "0.4"]


def run_flags(name: str) -> tuple[str, list[str]]:
    """(command, flags) of a run name: `cnn-old`/`lstm-old` (the earlier recipe), `cnn`/`lstm`/`bcresnet-N`
    (the edge recipe), any of those with `-distilled` (hfspeech distill from cached logits) or `-fm` (function
    matching), the teacher added by the caller; `+espeak`/`+espeakN` (training clips added) is the caller's too."""
    name = name.split("+espeak")[0]
    base = name.removesuffix("-distilled").removesuffix("-fm")
    command = "train" if base == name else "distill"
    if base in ("cnn-old", "lstm-old"):
        return command, ["--args_file", str(RECIPES / f"{base[:-4]}.args")]
    flags = ["--args_file", str(RECIPES / "edge.args")] + (FUNCTION_MATCHING if name.endswith("-fm") else [])
    if base in WIDTH:
        # FSDD is 8 kHz audio: mel bands above 4 kHz would be empty. SpecAugment and block dropout slowed
        # fitting several-fold in 15 epochs (measured, recipes/fsdd/README.md); the waveform chain regularises.
        overrides = {"width_multiplier": WIDTH[base], "f_max": 4000, "apply_spec_augment": False, "block_dropout": 0.0}
        return command, flags + ["--model_type", "bcresnet", "--config_overrides", json.dumps(overrides)]
    if base in ("cnn", "lstm"):
        return command, flags + ["--model_type", base]
    raise SystemExit(f"unknown run {name}")


def train(name: str, data: list[str], output_dir: Path, teacher: Path | None, extra: list[str]) -> dict:
    """One run in its own process (one torch thread): its metrics.json plus wall time."""
    command, flags = run_flags(name)
    if command == "distill":
        flags += ["--teacher", str(teacher), "--teacher_cache_dir", str(output_dir.parents[2] / "teacher-cache")]
    argv = [sys.executable, "-c", "import sys; from hfspeech.cli import main; sys.exit(main())", command, *flags,
            *data, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return {**run_in_process(name, argv, output_dir, env), "load": round(os.getloadavg()[0], 1)}


def edge_measurements(model_dir: Path, test_manifest: Path) -> dict:
    """Parameters; int8 ONNX size, latency on a 1-s clip and accuracy on the test speaker."""
    import torch
    from transformers import AutoModelForAudioClassification

    from hfspeech.data.audio import decode_audio
    from hfspeech.data.manifests import read_manifest
    from hfspeech.export import export_onnx
    from hfspeech.inference.classifier import AudioClassifier

    torch.set_num_threads(1)
    parameters = sum(p.numel() for p in AutoModelForAudioClassification.from_pretrained(model_dir).parameters())
    quantized = export_onnx(model_dir, model_dir / "onnx-int8", quantize="int8")
    classifier = one_thread_onnx(AudioClassifier.from_pretrained(str(quantized)), quantized)
    rows, _ = read_manifest(str(test_manifest))
    clips = [decode_audio(row["path"], 16000) for row in rows]
    correct = sum(classifier.classify_waveform(c, top_k=1).labels[0] == row["label"] for c, row in zip(clips, rows))
    second = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    times = []
    for _ in range(51):
        start = time.perf_counter()
        classifier.classify_waveform(second, top_k=1)
        times.append(time.perf_counter() - start)
    return {"parameters": parameters, "int8_bytes": quantized.stat().st_size,
            "int8_latency_ms": round(1000 * float(np.median(times[1:])), 2),
            "int8_threads": classifier.backend.session.get_session_options().intra_op_num_threads,
            "int8_test_accuracy": correct / len(rows)}


def one_thread_onnx(classifier, path: Path):
    """`classifier` with its onnxruntime session on one thread: onnxruntime's default is every core, whatever
    torch's setting, and the latency is reported for one thread (an edge device's)."""
    import onnxruntime

    from hfspeech.inference.backends import OnnxBackend

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    classifier.backend = OnnxBackend(path, classifier.config, options)
    return classifier


def teacher_for(root: Path, fold: str) -> tuple[Path, dict]:
    """The fold's teacher and what its DONE file reports; refuses one that is unfinished, or that does not
    say it held out this fold's speaker, or that names it among its training speakers."""
    folder = root / fold
    done = folder / "DONE"
    if not done.is_file():
        raise SystemExit(f"{folder}: no DONE file, the teacher is not finished")
    try:
        info = json.loads(done.read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(f"{done}: not JSON ({error})") from None
    if info.get("heldout_speaker") != fold or fold in info.get("training_speakers", [fold]):
        raise SystemExit(f"{done}: the teacher may have heard {fold}: {info}")
    return folder, info


def with_espeak_digits(data: list[str], paths: dict, work: Path, clips_per_digit: int) -> list[str]:
    """The data flags with the training manifest swapped for it plus espeak-ng digits (`synthetic.digits`);
    validation and test stay the recorded speakers."""
    from hfspeech.synthetic.digits import generate_spoken_digits, merge_manifests

    digits = generate_spoken_digits(work / f"espeak-digits-{clips_per_digit}", clips_per_digit=clips_per_digit)
    merged = merge_manifests(paths["train"], digits, paths["train"].with_name(f"train+espeak{clips_per_digit}.csv"))
    return [str(merged) if flag == str(paths["train"]) else flag for flag in data]


def espeak_clips_per_digit(name: str, default: int) -> int:
    """espeak-ng clips per digit a run adds to training: `NAME+espeak` the default, `NAME+espeakN` N, else 0."""
    if "+espeak" not in name:
        return 0
    count = name.split("+espeak", 1)[1]
    if count and not count.isdigit():
        raise SystemExit(f"unknown run {name}: +espeak takes a number of clips per digit or nothing")
    return int(count) if count else default


def fsdd_runs(args, results: dict, work: Path) -> None:
    for fold, name, key, data, paths in pending_fsdd_runs(args, results, work):
        teacher = None
        if run_flags(name)[0] == "distill":
            teacher, info = teacher_for(args.teacher_root, fold)
            results.setdefault("teachers", {})[fold] = {"path": str(teacher), **info}
        clips_per_digit = espeak_clips_per_digit(name, args.espeak_clips_per_digit)
        if clips_per_digit:
            data = with_espeak_digits(data, paths, work, clips_per_digit)
        output_dir = work / "runs" / name / fold
        value = train(name, data, output_dir, teacher, args.extra)
        value.update(espeak_clips_per_digit=clips_per_digit, extra_flags=args.extra)
        value.update(edge_measurements(output_dir, paths["test"]))
        record(results, args.output, key, value)


def summary(results: dict) -> list[str]:
    """Mean ± std (over folds, ddof=0) and the per-fold accuracies of each run, with its edge numbers."""
    runs = results.get("runs", {})
    lines = ["| run | params | int8 KB | int8 ms/1-s clip | " + " | ".join(SPEAKERS) + " | mean ± std | int8 mean | "
             "train s/fold |", "|---" * (7 + len(SPEAKERS)) + "|"]
    for name in sorted({key.split("/")[1] for key in runs if key.startswith("fsdd/")}):
        by_fold = {k.split("/")[2]: v for k, v in runs.items() if k.startswith(f"fsdd/{name}/")}
        accuracy = np.array([v["test_accuracy"] for v in by_fold.values()])
        int8 = np.array([v["int8_test_accuracy"] for v in by_fold.values()])
        any_run = next(iter(by_fold.values()))
        cells = [f"{by_fold[s]['test_accuracy']:.3f}" if s in by_fold else "-" for s in SPEAKERS]
        lines.append(f"| {name} | {any_run['parameters'] / 1000:.1f}k | {any_run['int8_bytes'] / 1024:.0f} | "
                     f"{np.median([v['int8_latency_ms'] for v in by_fold.values()]):.1f} | {' | '.join(cells)} | "
                     f"{accuracy.mean():.3f} ± {accuracy.std():.3f} | {int8.mean():.3f} | "
                     f"{np.mean([v['train_runtime_s'] for v in by_fold.values()]):.0f} |")
    for fold, teacher in sorted(results.get("teachers", {}).items()):
        lines.append(f"teacher {fold}: {json.dumps(teacher)}")
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " ") + " Prints a table; "
                                     "writes every run's numbers as it ends, and the machine, to --output (JSON).")
    parser.add_argument("--runs", nargs="*", default=["bcresnet-3", "bcresnet-1", "bcresnet-8", "cnn", "lstm"])
    parser.add_argument("--folds", nargs="*", default=list(SPEAKERS), choices=SPEAKERS)
    parser.add_argument("--teacher_root", type=Path, default=ROOT / "runs" / "teachers",
                        help="one fine-tuned teacher per held-out speaker: ROOT/<speaker>/ with a DONE file")
    parser.add_argument("--espeak_clips_per_digit", type=int, default=60,
                        help="espeak-ng clips of each digit added to the training split of `+espeak` runs")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="flags added to every run (last)")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "bench-edge")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "bench-edge" / "edge.json", help="JSON results")
    parser.add_argument("--resume", action="store_true", help="keep the results in --output, skip runs done")
    parser.add_argument("--report", nargs="+", type=Path, help="only print the table of these result files, merged")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.report:
        merged: dict = {"runs": {}, "teachers": {}}
        for data in read_reports(args.report):
            merged["runs"].update(data.get("runs", {}))
            merged["teachers"].update(data.get("teachers", {}))
        print("\n".join(summary(merged)))
        return
    for name in args.runs:  # a mistyped run or a missing teacher: found now, not after hours of other runs
        distilled = run_flags(name)[0] == "distill"
        espeak_clips_per_digit(name, args.espeak_clips_per_digit)
        for fold in args.folds if distilled else ():
            teacher_for(args.teacher_root, fold)
    results = start_results(args)
    fsdd_runs(args, results, args.work_dir)
    print("\n".join(summary(results)))


if __name__ == "__main__":
    run_script(main)
