"""Kill a training run with SIGKILL at random points, rerun the same command, and check it still ends as an
uninterrupted run does.

Each "attempt" is a real `hfspeech train` in a subprocess (`--worker`), killed with SIGKILL either after a
random delay or from inside a checkpoint save (`--kill_in_save`: after the weights, after the optimizer, or
with `model.safetensors` cut in half -- what a kill during the write leaves). Then the same command runs
again, until one attempt finishes (the next kill then goes to a fresh run). The script reports the kills,
the attempts, whether every run finished, the complete and incomplete checkpoints each kill left (the
rerun resumes from the newest complete one: at most one save interval lost), and the final metrics beside
those of an uninterrupted run with the same seed and of uninterrupted runs with other seeds (the noise).

    python benchmarks/kill_resume.py --kills 20              # the issue's acceptance check
    python benchmarks/kill_resume.py --kills 3 --epochs 3    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._checks import run_script, writable_path  # noqa: E402  (first: no downloads)
from benchmarks._common import machine  # noqa: E402

from hfspeech.cli.flags import number_in, positive  # noqa: E402
SAVE_POINTS = ("after_weights", "after_optimizer", "truncated_weights")
TINY_CNN = json.dumps({"conv_channels": [4, 8], "n_mels": 16, "apply_spec_augment": False})


def write_data(root: Path, clips_per_class: int = 12, seed: int = 0) -> Path:
    """Three tone classes of 0.5 s clips (no crop randomness at --max_length_seconds 0.5)."""
    import soundfile as sf

    from hfspeech.synthetic.signals import synth_tone_clip

    rng = np.random.default_rng(seed)
    for name, frequency in {"low": 300.0, "high": 2500.0, "noise": None}.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_class):
            sf.write(root / name / f"{name}_{i:03d}.wav",
                     synth_tone_clip(frequency, rng, 16000, 0.5, jitter=0.02, noise=0.05), 16000)
    return root


def train_command(data_dir: Path, output_dir: Path, seed: int, epochs: int) -> list[str]:
    return ["train", "--data_dir", str(data_dir), "--output_dir", str(output_dir), "--model_type", "cnn",
            "--config_overrides", TINY_CNN, "--num_train_epochs", str(epochs), "--learning_rate", "1e-2",
            "--per_device_train_batch_size", "4", "--max_length_seconds", "0.5", "--seed", str(seed),
            "--save_total_limit", "2", "--dataloader_num_workers", "0"]


def install_kill_in_save(point: str, at_save: int) -> None:
    """In this (worker) process: SIGKILL itself from inside the `at_save`-th checkpoint save, at `point`."""
    from transformers import Trainer

    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    original_save_checkpoint = Trainer._save_checkpoint

    def save_checkpoint(self, model, trial):
        calls["n"] += 1
        return original_save_checkpoint(self, model, trial)

    def armed():
        return calls["n"] == at_save

    Trainer._save_checkpoint = save_checkpoint
    if point == "after_weights":
        original = Trainer._save_optimizer_and_scheduler
        Trainer._save_optimizer_and_scheduler = lambda self, out: die() if armed() else original(self, out)
    elif point == "after_optimizer":
        original_rng = Trainer._save_rng_state
        Trainer._save_rng_state = lambda self, out: die() if armed() else original_rng(self, out)
    else:
        original_save = Trainer.save_model

        def save_model(self, output_dir=None, _internal_call=False):
            original_save(self, output_dir, _internal_call)
            weights = Path(output_dir or self.args.output_dir) / "model.safetensors"
            if armed() and weights.exists():
                data = weights.read_bytes()
                weights.write_bytes(data[: len(data) // 2])
                die()

        Trainer.save_model = save_model


def worker(args) -> int:
    if args.kill_in_save:
        point, at_save = args.kill_in_save.split(":")
        install_kill_in_save(point, int(at_save))
    from hfspeech.cli import main

    return main(train_command(Path(args.data_dir), Path(args.output_dir), args.seed, args.epochs))


def attempt(data_dir: Path, output_dir: Path, seed: int, epochs: int, kill_in_save: str | None = None,
            kill_after: float | None = None, log=None, timings: dict | None = None) -> tuple[int, bool]:
    """One run of the command; returns (exit code, killed). `kill_after`: SIGKILL after that many seconds.
    `timings` receives when the first checkpoint appeared and when the run ended (seconds from its start)."""
    command = [sys.executable, __file__, "--worker", "--data_dir", str(data_dir), "--output_dir", str(output_dir),
               "--seed", str(seed), "--epochs", str(epochs)]
    if kill_in_save:
        command += ["--kill_in_save", kill_in_save]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    start = time.time()
    before = set(output_dir.glob("checkpoint-*"))
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=ROOT)
    while process.poll() is None:
        elapsed = time.time() - start
        if timings is not None and "first_checkpoint" not in timings and set(output_dir.glob("checkpoint-*")) - before:
            timings["first_checkpoint"] = elapsed
        if kill_after is not None and elapsed >= kill_after:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.1)
    code = process.wait()
    if timings is not None:
        timings["end"] = time.time() - start
    return code, code == -signal.SIGKILL


def uninterrupted(data_dir: Path, output_dir: Path, seed: int, epochs: int, log, timings: dict | None = None) -> None:
    """A fresh run of the command, not killed; one that fails stops the benchmark (its output is in runs.log)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    code = attempt(data_dir, output_dir, seed, epochs, log=log, timings=timings)[0]
    if code != 0:
        raise RuntimeError(f"the uninterrupted run into {output_dir} exited with {code}: see {log.name}")


def checkpoints(output_dir: Path) -> dict:
    """The steps of the complete and the incomplete checkpoints in the folder."""
    from hfspeech.training.checkpoints import CHECKPOINT_NAME, incomplete_reason

    found = {"complete": [], "incomplete": []}
    for folder in output_dir.glob("checkpoint-*"):
        if CHECKPOINT_NAME.match(folder.name):
            found["incomplete" if incomplete_reason(str(folder)) else "complete"].append(int(folder.name.split("-")[1]))
    return {kind: sorted(steps) for kind, steps in found.items()}


def final_metrics(output_dir: Path) -> dict:
    metrics = json.loads((output_dir / "metrics.json").read_text())
    return {k: metrics[k] for k in ("test_accuracy", "test_macro_f1", "eval_loss") if k in metrics}


def killed_runs(data_dir: Path, work: Path, seed: int, epochs: int, plan: list, log) -> list[dict]:
    """Carry out the kills of `plan` (("save", "point:n") or ("time", seconds)) one after the other on a run
    folder, rerunning the same command after each; an attempt that finishes first ends that run (its
    metrics are kept) and the next kill goes to a fresh run folder. Every run is finished at the end."""
    runs, pending = [], list(plan)
    while pending or (runs and "metrics" not in runs[-1] and "failed" not in runs[-1]):
        if not runs or "metrics" in runs[-1] or "failed" in runs[-1]:
            output_dir = work / f"killed{len(runs)}"
            shutil.rmtree(output_dir, ignore_errors=True)
            runs.append({"output_dir": str(output_dir), "kills": [], "attempts": 0})
        run, output_dir = runs[-1], Path(runs[-1]["output_dir"])
        kind, value = pending[0] if pending else (None, None)
        code, killed = attempt(data_dir, output_dir, seed, epochs, kill_in_save=value if kind == "save" else None,
                               kill_after=value if kind == "time" else None, log=log)
        run["attempts"] += 1
        if killed:
            pending.pop(0)
            run["kills"].append({"kind": kind, "at": value, "checkpoints_after": checkpoints(output_dir)})
        elif kind == "time" and code == 0:  # the run was faster than planned: an earlier time for the next try
            pending[0] = ("time", round(value * random.Random(value).uniform(0.3, 0.9), 2))
        elif code != 0:
            run["failed"] = f"attempt {run['attempts']} exited with {code}"
        else:
            run["metrics"] = final_metrics(output_dir)
    return runs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints and writes JSON (--output): "
                                     "the kills, attempts, checkpoints left, final metrics beside the uninterrupted "
                                     "runs', the machine.")
    parser.add_argument("--kills", type=number_in(int, 0, 10000), default=20)
    parser.add_argument("--epochs", type=positive(int), default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise_seeds", type=number_in(int, 0, 100), default=2,
                        help="uninterrupted runs with other seeds")
    parser.add_argument("--work_dir", default="runs/kill-resume", help="data, runs and their log (runs.log) go here")
    parser.add_argument("--output", default=None, help="JSON results (default: WORK_DIR/kill_resume.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kill_in_save", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output_dir", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        return worker(args)

    work = writable_path(args.work_dir, "--work_dir", folder=True).resolve()  # the runs start in ROOT
    output = writable_path(args.output or work / "kill_resume.json", "--output")
    data_dir = write_data(work / "data")
    log = open(work / "runs.log", "w")
    start = time.time()
    reference_dir, timings = work / "uninterrupted", {}
    uninterrupted(data_dir, reference_dir, args.seed, args.epochs, log, timings)
    reference = final_metrics(reference_dir)
    noise = []
    for seed in range(args.seed + 1, args.seed + 1 + args.noise_seeds):
        uninterrupted(data_dir, work / f"seed{seed}", seed, args.epochs, log)
        noise.append(final_metrics(work / f"seed{seed}"))

    # The kills: every third inside a save (cycling through the save points, at the 1st or 2nd save of the
    # attempt), the others at a random time between half the start-up and the end of an uninterrupted run.
    rng = random.Random(args.seed)
    low, high = timings.get("first_checkpoint", timings["end"]) / 2, timings["end"]
    plan = [("save", f"{SAVE_POINTS[i // 3 % 3]}:{1 + i // 3 % 2}") if i % 3 == 0
            else ("time", round(rng.uniform(low, high), 2)) for i in range(args.kills)]
    runs = killed_runs(data_dir, work, args.seed, args.epochs, plan, log)
    kills = [k for run in runs for k in run["kills"]]
    results = {
        "kills": len(kills), "kills_inside_saves": sum(k["kind"] == "save" for k in kills),
        "runs": len(runs), "attempts": sum(run["attempts"] for run in runs),
        "every_rerun_finished": all("metrics" in run for run in runs),
        "incomplete_checkpoints_left_by_kills": sum(len(k["checkpoints_after"]["incomplete"]) for k in kills),
        "uninterrupted_metrics": reference, "other_seed_metrics": noise,
        "killed_run_metrics": [run.get("metrics") for run in runs],
        "equal_to_uninterrupted": all(run.get("metrics") == reference for run in runs),
        "uninterrupted_run_seconds": round(timings["end"], 1), "total_seconds": round(time.time() - start, 1),
        "load_average": os.getloadavg(), "machine": machine(),
        "settings": {"kills": args.kills, "epochs": args.epochs, "seed": args.seed, "noise_seeds": args.noise_seeds},
        "details": runs,
    }
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "details"}, indent=2))
    return results


if __name__ == "__main__":
    result = run_script(main)
    raise SystemExit(result if isinstance(result, int) else 0)
