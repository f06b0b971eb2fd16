"""The model card's table of exported variants: each file's size, and on `hfspeech stage --eval_dir` clips its
accuracy and typical latency per clip, measured here as `hfspeech predict` would run each variant."""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

from hfspeech.cpu_threads import cpu_limit
from hfspeech.data.progress_bars import stderr_is_terminal
from hfspeech.hub.card_markdown import label_text, markdown_table

MULTI_LABEL_UNMEASURED = "not measured (multi-label: use `hfspeech evaluate` on a labelled manifest)"


def variants_table(variants: list[dict], multi_label: bool = False) -> str:
    """The table, and under it what was measured: the `--eval_dir` clips (not the test split of the Results: a
    card read "0.900 on 20 clips" beside "test split (20 clips): accuracy 0.950", two sets of clips, no word),
    and the machine the latency was measured on."""
    rows = []
    for v in variants:
        timed = v["latency_ms"] is not None
        if multi_label:  # folder names are no multi-label truth: accuracy against them would mean nothing
            accuracy = MULTI_LABEL_UNMEASURED
        else:
            accuracy = f"{v['accuracy']:.3f} on {v['num_clips']} clips" if v["accuracy"] is not None else "not measured"
        rows.append((v["name"], f"`{v['file']}`", f"{v['size_mb']:.3f} MB", accuracy,
                     f"{v['latency_ms']:.2f} ms on {v['num_clips']} clips" if timed and multi_label
                     else f"{v['latency_ms']:.2f} ms" if timed else "not measured"))
    return markdown_table(("variant", "file", "size", "accuracy", "median latency per clip"), rows) + \
        measured_on(variants)


def measured_on(variants: list[dict]) -> str:
    """The line under the table naming the clips and the machine of its measurements; "" when none was made."""
    timed = [v for v in variants if v["latency_ms"] is not None]
    if not timed:
        return ""
    devices = ", ".join(f"{v['name']} on {v['device']}" for v in timed if v.get("device"))  # (older records: none)
    folder = f" {label_text(timed[0]['eval_set'])}" if timed[0].get("eval_set") else ""
    return (f"\n\nMeasured at staging on the {timed[0]['num_clips']} clips of the `--eval_dir` "
            f"{eval_kind(timed[0])}{folder} (its "
            f"clips, not the test split of the Results above), one clip at a time, file read included, on "
            f"{machine()}{f' ({devices})' if devices else ''}.")


def eval_kind(variant: dict) -> str:
    """What `--eval_dir` named: a folder, or a manifest (carded as "the `--eval_dir` folder test.csv")."""
    return "manifest" if variant.get("eval_manifest") else "folder"


def machine() -> str:
    """This machine's CPU (its model name from /proc/cpuinfo, else `platform.processor()`) and thread counts:
    a latency means little without them."""
    import torch

    name = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), None)
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "an unnamed CPU"
    usable, _ = cpu_limit()  # the CPUs this process may use (a container's share), not the machine's count
    return f"{name}, {usable} logical CPUs usable, PyTorch using {torch.get_num_threads()} threads"


def _timed(classifier, path) -> tuple[str, float]:
    """(the top label of one clip, the seconds it took, file read included, as `hfspeech predict` would)."""
    start = time.perf_counter()
    label = classifier.classify_file(str(path), top_k=1).labels[0]
    return label, time.perf_counter() - start


def typical_latency(seconds) -> float:
    """The median time per clip, the first clip left out (a warm-up: 67-251 ms against a median of 20 ms for the
    others). A mean over all clips made two stagings of one model read 350.58 and 62.85 ms (load spikes)."""
    timed = list(seconds[1:]) or list(seconds)
    return statistics.median(timed)


def measure_variants(dest: Path, clips: list[tuple[str, str]], multi_label: bool = False,
                     eval_set: Optional[str] = None, eval_manifest: bool = False) -> list[dict]:
    """Size on disk of each variant, and with ``clips`` ((path, label) pairs: `inference.agreement.labelled_clips`)
    its typical latency per clip (`typical_latency`) and (single-label only: a folder name is one label, not a
    multi-label clip's label set) its accuracy against the folder labels. A bar per variant on a terminal; in a
    log, one line each when done. ``eval_set``: the clips' folder (or ``eval_manifest``: manifest) name, as the card
    names them."""
    files = {"PyTorch fp32": dest / "model.safetensors", "ONNX fp32": dest / "onnx" / "model.onnx",
             "ONNX int8": dest / "onnx" / "model_quantized.onnx"}
    variants = []
    for name, file in files.items():
        if not file.is_file():
            continue
        variant = {"name": name, "file": file.relative_to(dest).as_posix(), "size_mb": file.stat().st_size / 1e6,
                   "accuracy": None, "latency_ms": None, "num_clips": len(clips), "eval_set": eval_set,
                   "eval_manifest": eval_manifest, "device": "cpu"}
        if clips:
            from tqdm.auto import tqdm

            from hfspeech.inference.classifier import AudioClassifier

            classifier = AudioClassifier.from_pretrained(str(dest if name.startswith("PyTorch") else file),
                                                         device=None, trust_remote_code=False)
            # a bar per variant (Whisper on 100 clips takes minutes), closed as Ctrl-C goes through (`with`): left
            # open, the bar ended on no line end, so "interrupted" was printed at its end, and drawn again below
            with tqdm(clips, desc=f"measuring {name} on --eval_dir", unit="clip", disable=not stderr_is_terminal()) \
                    as bar:  # a bar's redraws in a log file were 90 lines of `\r` (docs/cli.md: none in a log)
                predicted, seconds = zip(*(_timed(classifier, path) for path, _ in bar))
            variant["latency_ms"] = 1000 * typical_latency(seconds)
            variant["device"] = str(getattr(classifier.backend, "device", "cpu"))  # PyTorch takes a GPU if any
            if bar.disable:
                print(f"measuring {name} on --eval_dir: {len(clips)}/{len(clips)} clips", file=sys.stderr)
            if not multi_label:
                variant["accuracy"] = sum(p == label for p, (_, label) in zip(predicted, clips)) / len(clips)
        variants.append(variant)
    return variants
