"""What the benchmarks share: generated clips, the reference recipe's transforms, peak memory, the machine.

The reference is transformers' `examples/pytorch/audio-classification/run_audio_classification.py`:
`cast_column("audio", Audio(sampling_rate=...))`, then `set_transform` decodes, resamples, crops
(`random_subsample`) and runs the feature extractor on every access, every epoch; the Trainer's
default collator (`DataCollatorWithPadding` around the feature extractor) pads the batch.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from random import randint
from typing import Optional

import numpy as np
import soundfile as sf

from hfspeech.synthetic.reuse import GeneratedFolder
from hfspeech.synthetic.signals import synth_tone_clip

# Four classes a small model separates within an epoch or two: a low tone, a mid tone, a high tone, noise.
CLASSES = {"low": 300.0, "mid": 900.0, "high": 2500.0, "noise": None}
RATES = (8000, 16000, 22050, 44100)
# (extension, soundfile format, subtype): wav and flac always; ogg/mp3 when this libsndfile writes them.
FORMATS = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")]
GENERATOR_VERSION = 1


def writable_formats() -> list[tuple[str, str, str]]:
    available = sf.available_formats()
    return [f for f in FORMATS if f[1] in available and f[2] in sf.available_subtypes(f[1])]


def synth_clip(kind: str, rng: np.random.Generator, sampling_rate: int, seconds: float) -> np.ndarray:
    return synth_tone_clip(CLASSES[kind], rng, sampling_rate, seconds, jitter=0.03, noise=0.02)


def generate_clips(root: str | Path, num_clips: int, min_seconds: float = 0.5, max_seconds: float = 3.0,
                   seed: int = 0) -> Path:
    """An audiofolder `root/<class>/*.<ext>` of `num_clips` clips, cycling rates and formats; reused when present."""
    root = Path(root)
    formats = writable_formats()
    params = {"num_clips": num_clips, "min_seconds": min_seconds, "max_seconds": max_seconds, "seed": seed,
              "formats": [f[0] for f in formats], "rates": list(RATES), "version": GENERATOR_VERSION}
    folder = GeneratedFolder(root, params, info_file="clips.json")
    if folder.is_finished():
        return root
    folder.start_over()
    rng = np.random.default_rng(seed)
    kinds = list(CLASSES)
    for kind in kinds:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for old in (root / kind).iterdir():
            old.unlink()
    for i in range(num_clips):
        kind = kinds[i % len(kinds)]
        rate = RATES[(i // len(kinds)) % len(RATES)]
        extension, fmt, subtype = formats[(i // (len(kinds) * len(RATES))) % len(formats)]
        clip = synth_clip(kind, rng, rate, rng.uniform(min_seconds, max_seconds))
        sf.write(root / kind / f"{kind}_{i:06d}.{extension}", clip, rate, format=fmt, subtype=subtype)
    folder.finish()
    return root


def random_subsample(wav: np.ndarray, max_length: float, sample_rate: int = 16000) -> np.ndarray:
    """The reference recipe's random crop, as it is written there."""
    sample_length = int(round(sample_rate * max_length))
    if len(wav) <= sample_length:
        return wav
    random_offset = randint(0, len(wav) - sample_length - 1)
    return wav[random_offset : random_offset + sample_length]


def reference_transforms(feature_extractor, max_length_seconds: Optional[float]):
    """`train_transforms` and `val_transforms` of the reference recipe (audio column "audio", label "label")."""
    rate = feature_extractor.sampling_rate
    model_input_name = feature_extractor.model_input_names[0]

    def train_transforms(batch):
        subsampled_wavs = []
        for audio in batch["audio"]:
            wav = random_subsample(audio["array"], max_length=max_length_seconds, sample_rate=rate) \
                if max_length_seconds else audio["array"]
            subsampled_wavs.append(wav)
        inputs = feature_extractor(subsampled_wavs, sampling_rate=rate)
        return {model_input_name: inputs.get(model_input_name), "labels": list(batch["label"])}

    def val_transforms(batch):
        wavs = [audio["array"] for audio in batch["audio"]]
        inputs = feature_extractor(wavs, sampling_rate=rate)
        return {model_input_name: inputs.get(model_input_name), "labels": list(batch["label"])}

    return train_transforms, val_transforms


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children (DataLoader workers, map workers), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def run_in_subprocess(module_file: str, args: list[str]) -> dict:
    """Run `python module_file args...` (which prints one JSON line last) and return that JSON.

    Each measured side gets its own process, so that its peak memory is its own.
    """
    result = subprocess.run([sys.executable, module_file, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{module_file} {' '.join(args)} failed (exit {result.returncode}):\n"
                           f"{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_side(module_file: str, args: list[str], measure=None) -> dict:
    """One measured run: in a subprocess of its own, or, with `measure` (a function of `args`), in this process.

    In-process runs (`--in-process`, for smoke tests) skip the start-up of a Python process per run, but then
    every run shares this process's peak memory, so their memory numbers mean nothing.
    """
    return measure(args) if measure is not None else run_in_subprocess(module_file, args)


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine() -> dict:
    """What a reader needs to tell whether a number came from their machine: the CPU, its cores, the threads
    torch uses here (measured runs in subprocesses start with the same default), the library versions."""
    import datasets
    import torch
    import transformers

    try:
        import onnxruntime

        onnxruntime_version = onnxruntime.__version__
    except ImportError:
        onnxruntime_version = None
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime_version,
            "transformers": transformers.__version__, "datasets": datasets.__version__,
            "load_average_1min": os.getloadavg()[0]}


def write_json(results: dict, output: str | Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    return output


class MemorySampler:
    """Peak memory of this process and its live children (DataLoader / map workers), sampled every 50 ms.

    `ru_maxrss` (reported as `peak_rss_mb`, the largest single process) misses workers that run at the
    same time as the main process. The sampled total is the proportional set size (PSS) summed over
    the process tree, so pages that forked workers share with their parent are counted once;
    `peak_pss_anon_mb` is its anonymous part (heap, arrays), without the pages of memory-mapped
    Arrow files that were read (file-backed, shared with the page cache, droppable under pressure).
    """

    def __init__(self, interval: float = 0.05):
        import threading

        self.interval = interval
        self.peak_pss_mb = 0.0
        self.peak_pss_anon_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss_kb(pid: int) -> tuple[int, int]:
        pss = anon = 0
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Pss_Anon:"):
                    anon = int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
        return pss, anon

    @staticmethod
    def _tree() -> list[int]:
        pids, frontier = [os.getpid()], [os.getpid()]
        while frontier:
            parent = frontier.pop()
            try:
                children = [int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                children = []
            pids += children
            frontier += children
        return pids

    def sample(self) -> None:
        totals = [self._pss_kb(pid) for pid in self._tree()]
        self.peak_pss_mb = max(self.peak_pss_mb, sum(t[0] for t in totals) / 1024)
        self.peak_pss_anon_mb = max(self.peak_pss_anon_mb, sum(t[1] for t in totals) / 1024)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "MemorySampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def result(self) -> dict:
        return {"peak_rss_mb": round(peak_rss_mb(), 1), "peak_pss_mb": round(self.peak_pss_mb, 1),
                "peak_pss_anon_mb": round(self.peak_pss_anon_mb, 1)}
