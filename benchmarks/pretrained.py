"""Pretrained encoders vs models trained from scratch, on real speech the models never heard.

FSDD (../shared/data/fsdd: 4 speakers x 500 spoken digits, 8 kHz), leave one speaker out: train on three
speakers, test on the fourth. Every run goes through `recipes/finetune.py` with a flag file from
`recipes/fsdd/` (CNN, LSTM, Whisper fine-tuned, Whisper linear probe from the frozen-feature cache), in its
own process, timed. Also spoken-language ID on generated speech (`demo-data --kind languages`), multilingual
Whisper base vs the CNN; and two speed ratios measured in this run: a training step on 1-s clips with the
encoder cut to the clip vs padded to 30 s, and a probe epoch from the cache vs with the encoder recomputed.

    python benchmarks/pretrained.py                                   # everything (long on 2 cores)
    python benchmarks/pretrained.py --runs probe-tiny cnn --folds george   # a part of it

Runs named in SYNTHETIC train on the fold's three voices plus espeak-ng digits (`prepare_fsdd.py
--synthetic_per_digit`; validation and test stay real).

Runs named in SOUPS train nothing: they average the fold's models of other runs (`hfspeech average`) and
evaluate that one model (`hfspeech evaluate`).

Results are appended run by run to --output (JSON), so an interrupted benchmark keeps what it measured and
`--resume` skips runs already there; each run's row keeps the `machine` it was measured on.

The runs themselves are listed in `benchmarks/_pretrained_runs.py`, the step-time ratio in `benchmarks/_step_time.py`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._checks import read_reports, run_script, writable_path  # noqa: E402
from benchmarks._common import machine  # noqa: E402
from benchmarks._pretrained_runs import (  # noqa: E402,F401  (FSDD, SPEAKERS, RECIPES: imported from here too)
    ACCENTS, FSDD, LANGUAGE_RUNS, RECIPES, RUNS, SOUPS, SPEAKERS, SYNTHETIC,
)
from benchmarks._step_time import step_time_rows  # noqa: E402
from recipes.fsdd.prepare_fsdd import prepare_fsdd  # noqa: E402

from hfspeech.cli.flags import positive  # noqa: E402
from hfspeech.errors import UsageError  # noqa: E402


def train(name: str, flag_file: str, extra: list[str], data: list[str], output_dir: Path) -> dict:
    """One recipe run in its own process: its metrics.json plus wall time."""
    command = [sys.executable, str(ROOT / "recipes" / "finetune.py"), "--args_file", str(RECIPES / flag_file),
               *data, *extra]
    return run_in_process(name, command, output_dir)


def run_in_process(name: str, command: list[str], output_dir: Path, env: Optional[dict] = None) -> dict:
    """`command` (a training run, seeded, one checkpoint kept) into `output_dir`: its metrics plus wall time."""
    command = with_run_defaults(command, output_dir)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((output_dir / "metrics.json").read_text())
    epochs = float(metrics.get("epoch", 0) or metrics.get("train_epoch", 0) or 0)
    return {"test_accuracy": metrics.get("test_accuracy"), "test_macro_f1": metrics.get("test_macro_f1"),
            "eval_accuracy": metrics.get("eval_accuracy"), "train_runtime_s": metrics.get("train_runtime"),
            "epochs": epochs, "wall_s": round(wall, 1)}


def with_run_defaults(command: list[str], output_dir: Path) -> list[str]:
    """`command` writing into `output_dir`, one checkpoint kept, seed 0 unless the run's own flags name a seed
    (appended after them, a default would win: the last of a repeated flag counts)."""
    seed = [] if "--seed" in command else ["--seed", "0"]
    return [*command, "--output_dir", str(output_dir), "--overwrite_output_dir", *seed,
            "--save_total_limit", "1", "--disable_tqdm", "True"]


def record(results: dict, output: Path, key: str, value: dict) -> None:
    """`value` as the row `key` of `results`, stamped with this session's machine (a resumed file mixes rows
    from several), and the whole file rewritten, so an interrupted benchmark keeps every row it finished."""
    results.setdefault("runs", {})[key] = {**value, "machine": results["machine"]} if "machine" in results else value
    output.write_text(json.dumps(results, indent=2))
    print(f"{key}: {json.dumps(value)}", flush=True)


def pending_fsdd_runs(args, results: dict, work: Path):
    """`(fold, run name, results key, data flags, manifest paths)` of every run still to do, fold by fold (the
    leave-one-speaker-out manifests written first); `--resume` skips the runs `results` already holds."""
    for fold in args.folds:
        for name in args.runs:
            key = f"fsdd/{name}/{fold}"
            if not (args.resume and key in results.get("runs", {})):
                member = SOUPS.get(name, (name,))[0]  # a soup's data are its members'
                paths = fold_manifests(work, fold, SYNTHETIC.get(member, 0), member in ACCENTS)
                data = ["--train_file", str(paths["train"]), "--validation_file", str(paths["validation"]),
                        "--test_file", str(paths["test"])]
                yield fold, name, key, data, paths


def fold_manifests(work: Path, fold: str, synthetic_per_digit: int = 0, accents: bool = False) -> dict[str, Path]:
    """The fold's manifests; with `synthetic_per_digit`, espeak-ng digits (generated once for every fold; with
    `accents`, other languages' voices too) join the training split, in their own folder so the real-only
    manifests stay as they are."""
    if not synthetic_per_digit:
        return prepare_fsdd(FSDD, work / "fsdd" / fold, test_speaker=fold)
    kind = f"{'accents' if accents else 'espeak'}{synthetic_per_digit}"
    return prepare_fsdd(FSDD, work / f"fsdd-{kind}" / fold, test_speaker=fold, synthetic_per_digit=synthetic_per_digit,
                        synthetic_dir=work / f"digits-{kind}", synthetic_accents=accents)


def fsdd_runs(args, results: dict, work: Path) -> None:
    for fold, name, key, data, paths in pending_fsdd_runs(args, results, work):
        if name in SOUPS:
            record(results, args.output, key, soup(name, fold, data, paths["test"], work, results, args.output))
            continue
        flag_file, extra = RUNS[name]
        extra = [start_from(value, fold, data, work, lambda k, v: record(results, args.output, k, v))
                 for value in extra]
        record(results, args.output, key, train(key, flag_file, extra, data, work / "runs" / name / fold))


def soup(name: str, fold: str, data: list[str], test_file: Path, work: Path, results: dict, output: Path) -> dict:
    """The fold's runs of SOUPS[name] (trained first when missing) averaged by `hfspeech average` into one
    model, and its test metrics from `hfspeech evaluate`."""
    members = [start_from(f"{{{member}}}", fold, data, work, lambda k, v: record(results, output, k, v))
               for member in SOUPS[name]]
    output_dir = work / "runs" / name / fold
    shutil.rmtree(output_dir, ignore_errors=True)
    start = time.perf_counter()
    for command in (["average", *members, "--output_dir", str(output_dir)],
                    ["evaluate", "--model", str(output_dir), "--test_file", str(test_file),
                     "--output_dir", str(output_dir / "evaluation")]):
        result = subprocess.run([sys.executable, "-m", "hfspeech.cli", *command], capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"{name}/{fold}: hfspeech {command[0]} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((output_dir / "evaluation" / "test_metrics.json").read_text())
    return {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"], "members": list(SOUPS[name]),
            "wall_s": round(time.perf_counter() - start, 1)}


def start_from(value: str, fold: str, data: list[str], work: Path, on_trained=None) -> str:
    """'{run}' in a run's flags: the model that run saved for this fold (trained first when missing, and its
    result handed to `on_trained(key, result)`)."""
    if not (value.startswith("{") and value.endswith("}")):
        return value
    name = value[1:-1]
    output_dir = work / "runs" / name / fold
    if not (output_dir / "config.json").is_file():
        flag_file, extra = RUNS[name]
        result = train(f"fsdd/{name}/{fold}", flag_file, extra, data, output_dir)
        if on_trained is not None:
            on_trained(f"fsdd/{name}/{fold}", result)
    return str(output_dir)


def language_runs(args, results: dict, work: Path) -> None:
    from hfspeech.synthetic.spoken import generate_language_dataset

    data_dir = generate_language_dataset(work / "languages", clips_per_language=80, progress=False)
    for name in args.language_runs:
        key = f"languages/{name}"
        if args.resume and key in results.get("runs", {}):
            continue
        flag_file, extra = LANGUAGE_RUNS[name]
        record(results, args.output, key, train(key, flag_file, extra, ["--data_dir", str(data_dir)],
                                                work / "runs" / "languages" / name))


def step_time_ratio(args, results: dict) -> None:
    for key, value in step_time_rows(args.batch_size, args.steps):
        record(results, args.output, key, value)


def summary(results: dict) -> list[str]:
    """Mean ± spread over folds per run, the probe-epoch ratio, the step-time ratio."""
    runs = results.get("runs", {})
    lines = ["| run | folds | test accuracy (mean ± std) | min | train time per fold | per epoch |", "|---|---|---|---|---|---|"]
    names = sorted({key.split("/")[1] for key in runs if key.startswith("fsdd/")})
    for name in names:
        rows = [v for k, v in runs.items() if k.startswith(f"fsdd/{name}/")]
        accuracy = np.array([r["test_accuracy"] for r in rows])
        times = "- | -"  # a soup: averaged, not trained
        if all("train_runtime_s" in r for r in rows):
            per_epoch = np.mean([r["train_runtime_s"] / max(r["epochs"], 1) for r in rows])
            times = f"{np.mean([r['train_runtime_s'] for r in rows]):.0f} s | {per_epoch:.1f} s"
        lines.append(f"| {name} | {len(rows)} | {accuracy.mean():.3f} ± {accuracy.std():.3f} | {accuracy.min():.3f} | "
                     f"{times} |")
    for key, value in runs.items():
        if key.startswith("languages/"):
            lines.append(f"| {key} | - | {value['test_accuracy']:.3f} | - | {value['train_runtime_s']:.0f} s | "
                         f"{value['train_runtime_s'] / max(value['epochs'], 1):.1f} s |")
    for key, live in runs.items():  # the same fold, cached and live
        cached = runs.get(key.replace("probe-tiny-live", "probe-tiny"))
        if key.startswith("fsdd/probe-tiny-live/") and cached:
            per_epoch = cached["train_runtime_s"] / cached["epochs"]
            lines.append(f"probe epoch ({key.split('/')[-1]}): {per_epoch:.2f} s from the cache vs {live['train_runtime_s']:.0f} s "
                         f"with the encoder recomputed, {live['train_runtime_s'] / per_epoch:.0f}x faster")
    for key, step in runs.items():
        if key.startswith("step_time/"):
            lines.append(f"training step, tiny.en, batch {step['batch_size']} of 1-s clips, {step.get('threads', '?')} "
                         f"thread(s): cut {step['cut_1s_step_s']} s vs 30-s padding {step['padded_30s_step_s']} s "
                         f"({step['speedup']}x)")
    return lines


def start_results(args) -> dict:
    """The results so far (`--resume`: those in `--output`, else none), with this machine; FSDD must be there.
    Rows kept from an earlier file keep the machine they were measured on: their own, or else that file's."""
    if not FSDD.is_dir():
        raise SystemExit(f"FSDD recordings not found at {FSDD} (../shared beside the project)")
    writable_path(args.output, "--output")
    writable_path(args.work_dir, "--work_dir", folder=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = earlier_results(args.output) if args.resume and args.output.is_file() else {}
    for row in results.get("runs", {}).values():
        if "machine" in results:
            row.setdefault("machine", results["machine"])
    results["machine"] = machine()
    return results


def earlier_results(output: Path) -> dict:
    """The results file `--resume` goes on from; one that is not a results file is a one-line error."""
    try:
        results = json.loads(output.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"--output {output}: cannot be read as a results file to resume ({error}); give another "
                         "--output or drop --resume") from None
    if not (isinstance(results, dict) and isinstance(results.get("runs"), dict)):  # `{}` too: every file has one
        raise UsageError(f"--output {output}: not a results file of this benchmark (no 'runs' table) to resume")
    return results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] + " Prints a table; writes every run's "
                                     "metrics and wall time as it ends, and the machine, to --output (JSON).")
    parser.add_argument("--runs", nargs="*", default=["probe-tiny", "cnn", "finetune-tiny", "lstm", "probe-base",
                                                      "finetune-base", "probe-tiny-live"],
                        choices=[*RUNS, *SOUPS])
    parser.add_argument("--folds", nargs="*", default=list(SPEAKERS), choices=SPEAKERS)
    parser.add_argument("--language_runs", nargs="*", default=list(LANGUAGE_RUNS), choices=list(LANGUAGE_RUNS))
    parser.add_argument("--step_time", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--batch_size", type=positive(int), default=8, help="clips per timed training step")
    parser.add_argument("--steps", type=positive(int), default=3, help="timed training steps (after one untimed)")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "bench-pretrained")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "bench-pretrained" / "pretrained.json")
    parser.add_argument("--resume", action="store_true", help="keep the results in --output, skip runs done")
    parser.add_argument("--report", nargs="+", type=Path, help="only print the table of these result files, merged")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.report:
        runs = {k: v for report in read_reports(args.report) for k, v in report.get("runs", {}).items()}
        print("\n".join(summary({"runs": runs})))
        return
    results = start_results(args)
    if args.step_time:
        step_time_ratio(args, results)
    fsdd_runs(args, results, args.work_dir)
    language_runs(args, results, args.work_dir)
    print("\n".join(summary(results)))


if __name__ == "__main__":
    run_script(main)
