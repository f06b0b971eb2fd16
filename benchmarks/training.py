"""Training benchmark: the hfspeech recipe vs a plain transformers Trainer fed the reference recipe's way.

    python benchmarks/training.py                             # CNN, LSTM, tiny wav2vec2; 200 clips, 8 epochs (~2-3 min, 2 cores)
    python benchmarks/training.py --models cnn --epochs 6

Both sides train the same models on the same generated clips (four classes: three tones and noise, 0.5-3 s,
mixed rates and formats; separate train/ and validation/ folders so the splits are identical), starting from the
same saved initial weights, with the same TrainingArguments (batch size, learning rate, warm-up, epochs, seed,
evaluation every epoch, no checkpoints, no DataLoader workers) and the same random 1 s training crop:

- hfspeech: `hfspeech.training.run.setup_training` (decode once into the cache, per-epoch crop views,
  `AudioClassificationCollator`) and `trainer.train()`;
- reference: transformers' run_audio_classification.py: `cast_column("audio", Audio(sampling_rate))`,
  `set_transform(train_transforms / val_transforms)` (decoding every epoch), the default collator, a plain
  `Trainer` (with `remove_unused_columns=False`, as its README runs it; accuracy by numpy instead of
  `evaluate.load`, which would need the network).

Reported per model and side: training samples/s (training clips / the median epoch's seconds, training and
its evaluation: the median keeps a burst of load from other processes out of it; the Trainer's own
`train_samples_per_second` over the whole loop is in the JSON too), end-to-end seconds (from the audio folder to the trained model), the time from the start
until validation accuracy first reaches `--target-accuracy`, the final accuracy, and peak memory. Each run is a
subprocess of its own. Ratios are hfspeech / reference. Results also go to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _checks import run_script, writable_path  # noqa: E402  (first: no downloads)
from _common import (  # noqa: E402
    CLASSES, MemorySampler, generate_clips, machine, reference_transforms, run_side, write_json,
)

from hfspeech.cli.flags import number_in, positive  # noqa: E402

SAMPLING_RATE = 16000
MAX_LENGTH_SECONDS = 1.0
MODELS = ("cnn", "lstm", "wav2vec2")
# Small enough for a CPU benchmark in minutes; the same config on both sides.
BASELINE_OVERRIDES = {
    "cnn": {"conv_channels": [8, 16, 32], "n_mels": 32},
    "lstm": {"lstm_hidden_size": 32, "num_lstm_layers": 1},
}
LEARNING_RATES = {"cnn": 3e-3, "lstm": 3e-3, "wav2vec2": 3e-3}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints a table; writes JSON "
                                     "(--output): the machine, the settings, both sides and their ratios.")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--clips-per-class", type=positive(int), default=50,
                        help="training clips per class (validation: 1/4)")
    parser.add_argument("--epochs", type=positive(int), default=8)
    parser.add_argument("--batch-size", type=positive(int), default=32)
    parser.add_argument("--target-accuracy", type=number_in(float, 0, 1), default=0.85)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="runs/benchmark-training", help="generated clips and models go here")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process, not one subprocess per run (quick checks; memory not comparable)")
    parser.add_argument("--output", help="JSON results (default: WORK_DIR/training_benchmark.json)")
    parser.add_argument("--side", choices=["hfspeech", "reference"], help=argparse.SUPPRESS)  # one measured run
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--model_dir", help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_data(work_dir: Path, clips_per_class: int) -> Path:
    root = work_dir / f"data-{clips_per_class}"
    generate_clips(root / "train", clips_per_class * len(CLASSES), seed=0)
    generate_clips(root / "validation", max(1, clips_per_class // 4) * len(CLASSES), seed=1)
    return root


def save_initial_model(name: str, folder: Path, seed: int) -> Path:
    """The model both sides start from: one config, one set of initial weights, with its feature extractor."""
    import torch

    import hfspeech.models

    hfspeech.models.register()  # the baselines, for the Auto classes
    from hfspeech.models import BASELINE_MODELS
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    labels = sorted(CLASSES)  # both sides number the classes in sorted order
    if name == "wav2vec2":
        return save_tiny_ssl_model(str(folder), "wav2vec2", labels=labels, sampling_rate=SAMPLING_RATE, seed=seed)
    torch.manual_seed(seed)
    spec = BASELINE_MODELS[name]
    config = spec.config_class(num_labels=len(labels), id2label=dict(enumerate(labels)),
                               label2id={label: i for i, label in enumerate(labels)}, sampling_rate=SAMPLING_RATE,
                               **BASELINE_OVERRIDES[name])
    spec.model_class(config).save_pretrained(folder)
    spec.feature_extractor_class(sampling_rate=SAMPLING_RATE).save_pretrained(folder)
    return folder


def training_arguments(args, model_name: str, output_dir: str) -> dict:
    return dict(output_dir=output_dir, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
                per_device_eval_batch_size=64, learning_rate=LEARNING_RATES[model_name], warmup_ratio=0.1,
                weight_decay=0.0, seed=args.seed, eval_strategy="epoch", save_strategy="no",
                load_best_model_at_end=False, logging_strategy="epoch", report_to="none",
                remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True)


class AccuracyClock:
    """A TrainerCallback that notes the time of every evaluation and its accuracy, and how long each epoch took
    (training and its evaluation, from the end of the previous one)."""

    def __init__(self, start: float):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                clock.last = time.perf_counter()

            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                now = time.perf_counter()
                clock.points.append({"epoch": state.epoch, "seconds": now - clock.start, "epoch_seconds": now - clock.last,
                                     "accuracy": (metrics or {}).get("eval_accuracy")})
                clock.last = now

        self.start = self.last = start
        self.points: list[dict] = []
        self.callback = Callback()


def train_hfspeech(args, start: float, output_dir: str) -> tuple[dict, list, int]:
    from hfspeech.training.run import parse_args as recipe_args, setup_training

    flags = {"--data_dir": args.data_dir, "--model_name_or_path": args.model_dir,
             "--max_length_seconds": MAX_LENGTH_SECONDS, "--test_split_percentage": 0,
             **{f"--{k}": v for k, v in training_arguments(args, args.model, output_dir).items()}}
    setup = setup_training(*recipe_args([str(x) for item in flags.items() for x in item]))
    clock = AccuracyClock(start)
    setup.trainer.add_callback(clock.callback)
    return setup.trainer.train().metrics, clock.points, len(setup.trainer.train_dataset)


def train_reference(args, start: float, output_dir: str) -> tuple[dict, list, int]:
    import datasets
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Trainer, TrainingArguments, set_seed

    import hfspeech.models

    hfspeech.models.register()  # the baselines, for the Auto classes

    training_args = TrainingArguments(**training_arguments(args, args.model, output_dir))
    set_seed(training_args.seed)
    raw = datasets.load_dataset("audiofolder", data_dir=args.data_dir, drop_labels=False)
    extractor = AutoFeatureExtractor.from_pretrained(args.model_dir)
    raw = raw.cast_column("audio", datasets.Audio(sampling_rate=extractor.sampling_rate))
    train_transforms, val_transforms = reference_transforms(extractor, MAX_LENGTH_SECONDS)
    model = AutoModelForAudioClassification.from_pretrained(args.model_dir)
    if hasattr(model, "freeze_feature_encoder"):  # the recipe's default --freeze_feature_encoder True
        model.freeze_feature_encoder()
    raw["train"].set_transform(train_transforms, output_all_columns=False)
    raw["validation"].set_transform(val_transforms, output_all_columns=False)

    def compute_metrics(prediction):
        return {"accuracy": float(np.mean(np.argmax(prediction.predictions, axis=1) == prediction.label_ids))}

    clock = AccuracyClock(start)
    trainer = Trainer(model=model, args=training_args, train_dataset=raw["train"], eval_dataset=raw["validation"],
                      compute_metrics=compute_metrics, processing_class=extractor, callbacks=[clock.callback])
    return trainer.train().metrics, clock.points, len(raw["train"])


def measure_one(args) -> dict:
    train = train_hfspeech if args.side == "hfspeech" else train_reference
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{args.side}-") as tmp, MemorySampler() as memory:
        os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / "datasets")  # a fresh cache: nothing decoded before
        import datasets
        import transformers

        datasets.config.HF_DATASETS_CACHE = Path(os.environ["HF_DATASETS_CACHE"])  # also when imported before
        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()
        # Python imports are not training: each side's modules are loaded before the clock starts.
        import hfspeech.models

        hfspeech.models.register()  # the baselines, for the Auto classes
        import hfspeech.training.run  # noqa: F401
        from transformers import Trainer  # noqa: F401
        start = time.perf_counter()
        metrics, points, num_train = train(args, start, str(Path(tmp) / "run"))
        seconds = time.perf_counter() - start
    reached = next((p["seconds"] for p in points if (p["accuracy"] or 0) >= args.target_accuracy), None)
    median_epoch = float(np.median([p["epoch_seconds"] for p in points]))
    return {"side": args.side, "model": args.model, "num_train_clips": num_train,
            "samples_per_s": num_train / median_epoch, "median_epoch_s": median_epoch,
            "trainer_samples_per_s": metrics["train_samples_per_second"],
            "train_runtime_s": metrics["train_runtime"], "end_to_end_s": seconds, "time_to_target_s": reached,
            "final_accuracy": points[-1]["accuracy"] if points else None, "evaluations": points, **memory.result()}


def ratio(a, b):
    return None if a is None or b is None else a / b


def print_table(rows: list[dict], target: float) -> None:
    def fmt(value, spec):
        return format(value, spec) if value is not None else "-"

    print(f"\n{'model':<10}{'side':<11}{'samples/s':>10}{'end-to-end s':>14}{f'to acc {target:g} s':>15}"
          f"{'final acc':>10}{'peak RSS MB':>13}{'all procs MB':>14}")
    for row in rows:
        for side in ("hfspeech", "reference"):
            s = row[side]
            print(f"{row['model']:<10}{side:<11}{s['samples_per_s']:>10.1f}{s['end_to_end_s']:>14.1f}"
                  f"{fmt(s['time_to_target_s'], '.1f'):>15}{fmt(s['final_accuracy'], '.3f'):>10}"
                  f"{s['peak_rss_mb']:>13.0f}{s['peak_pss_mb']:>14.0f}")
        r = row["ratio"]
        print(f"{row['model']:<10}{'ratio':<11}{fmt(r['samples_per_s'], '.2f'):>9}x"
              f"{fmt(r['end_to_end_speedup'], '.2f'):>13}x{fmt(r['time_to_target_speedup'], '.2f'):>14}x"
              f"{'':>10}{fmt(r['peak_rss'], '.2f'):>12}x{fmt(r['peak_pss'], '.2f'):>13}x")
    print("ratio: hfspeech / reference for samples/s and memory; reference / hfspeech for times (speed-up). "
          "Target: hfspeech samples/s not below the plain Trainer (ratio >= 1).")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.side:
        print(json.dumps(measure_one(args)))
        return {}
    work_dir = writable_path(args.work_dir, "--work_dir", folder=True)
    output = writable_path(args.output or work_dir / "training_benchmark.json", "--output")
    started = time.perf_counter()
    data_dir = make_data(work_dir, args.clips_per_class)
    measure = (lambda argv: measure_one(parse_args(argv))) if args.in_process else None
    rows = []
    for name in args.models:
        model_dir = save_initial_model(name, work_dir / f"{name}-initial", args.seed)
        row = {"model": name}
        for side in ("hfspeech", "reference"):
            row[side] = run_side(__file__, [
                "--side", side, "--model", name, "--model_dir", str(model_dir), "--data_dir", str(data_dir), "--epochs",
                str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
                "--target-accuracy", str(args.target_accuracy)], measure)
            print(f"{name} {side}: {row[side]['samples_per_s']:.1f} samples/s, {row[side]['end_to_end_s']:.1f} s "
                  f"end to end, accuracy {row[side]['final_accuracy']}", flush=True)
        h, r = row["hfspeech"], row["reference"]
        row["ratio"] = {"samples_per_s": ratio(h["samples_per_s"], r["samples_per_s"]),
                        "trainer_samples_per_s": ratio(h["trainer_samples_per_s"], r["trainer_samples_per_s"]),
                        "end_to_end_speedup": ratio(r["end_to_end_s"], h["end_to_end_s"]),
                        "time_to_target_speedup": ratio(r["time_to_target_s"], h["time_to_target_s"]),
                        "peak_rss": ratio(h["peak_rss_mb"], r["peak_rss_mb"]),
                        "peak_pss": ratio(h["peak_pss_mb"], r["peak_pss_mb"])}
        rows.append(row)
    meets = all((row["ratio"]["samples_per_s"] or 0) >= 1.0 for row in rows)
    print_table(rows, args.target_accuracy)
    results = {"machine": machine(), "in_process": args.in_process,  # in-process: memory not comparable
               "data_dir": str(data_dir), "clips_per_class": args.clips_per_class, "seed": args.seed,
               "epochs": args.epochs, "batch_size": args.batch_size, "max_length_seconds": MAX_LENGTH_SECONDS,
               "target_accuracy": args.target_accuracy, "learning_rates": LEARNING_RATES,
               "baseline_overrides": BASELINE_OVERRIDES, "meets_target": meets, "results": rows,
               "total_seconds": time.perf_counter() - started}
    output = write_json(results, output)
    print(f"hfspeech samples/s >= plain Trainer for every model: {meets}; results: {output}")
    return results


if __name__ == "__main__":
    run_script(main)
