"""Parts of benchmarks/inference.py beyond the per-backend table: cold starts, a long file, a transformer.

Each measurement alternates the things it compares, round by round, so that a machine shared with other
work slows them alike; the load average is recorded with the numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# How inference.py times, recorded with its results.
METHOD = ("same threads for torch and onnxruntime; backends in turns, round by round; 5 single clips and 1 batch "
          "per backend as warm-up, not timed; p50/p95: every clip of every round; throughput: the median round; "
          "long file: best of 2; cold start: median (and best) of --cold_start_repeats fresh processes")


def hfspeech_command() -> list[str]:
    """The `hfspeech` console script of this environment (what a user runs), else `python -c` on the CLI."""
    script = Path(sys.executable).parent / "hfspeech"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "import sys; from hfspeech.cli import main; "
                                                                          "sys.exit(main())"]


def cold_start_seconds(commands: dict[str, list[str]], repeats: int = 3) -> dict[str, dict]:
    """Wall time of each command in a fresh process (median and best of `repeats`, taken in turns)."""
    times = {name: [] for name in commands}
    for _ in range(repeats):
        for name, args in commands.items():
            start = time.perf_counter()
            result = subprocess.run(hfspeech_command() + args, capture_output=True, text=True)
            times[name].append(time.perf_counter() - start)
            if result.returncode != 0:
                raise RuntimeError(f"hfspeech {' '.join(args)} failed: {result.stderr[-2000:]}")
    return {name: {"median_s": float(np.median(t)), "best_s": float(np.min(t))} for name, t in times.items()}


def write_long_file(path: Path, clips: list[np.ndarray], minutes: float, rate: int = 16000) -> Path:
    """A `minutes`-long 16-bit WAV of the held-out clips one after another (cycled), written block by block."""
    if path.is_file() and abs(sf.info(str(path)).duration - 60 * minutes) < 1:
        return path
    total, written, index = int(60 * minutes * rate), 0, 0
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        while written < total:
            clip = clips[index % len(clips)][: total - written]
            f.write(np.clip(clip, -1, 1))
            written, index = written + len(clip), index + 1
    return path


def long_file_speed(classifiers: dict, path: Path, repeats: int = 2) -> dict[str, dict]:
    """Real-time factor of `classify_file` on `path` (audio seconds per wall second; best of `repeats`)."""
    duration = sf.info(str(path)).duration
    times = {name: [] for name in classifiers}
    for _ in range(repeats):
        for name, classifier in classifiers.items():
            start = time.perf_counter()
            prediction = classifier.classify_file(str(path))
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds": float(min(t)), "real_time_factor": duration / float(min(t)),
                   "num_windows": prediction.num_windows, "audio_seconds": duration} for name, t in times.items()}


def load_average() -> float:
    return os.getloadavg()[0]
