"""The model card's table of exported variants: each file's size, and on `hfspeech stage --eval_dir` clips its
accuracy and typical latency per clip, measured here as `hfspeech predict` would run each variant."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from hfspeech.data.progress_bars import stderr_is_terminal
from hfspeech.hub.card_markdown import markdown_table

MULTI_LABEL_UNMEASURED = "not measured (multi-label: use `hfspeech evaluate` on a labelled manifest)"


def variants_table(variants: list[dict], multi_label: bool = False) -> str:
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
    return markdown_table(("variant", "file", "size", "accuracy", "median latency per clip"), rows)


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


def measure_variants(dest: Path, clips: list[tuple[str, str]], multi_label: bool = False) -> list[dict]:
    """Size on disk of each variant, and with ``clips`` ((path, label) pairs: `inference.agreement.labelled_clips`)
    its typical latency per clip (`typical_latency`) and (single-label only: a folder name is one label, not a
    multi-label clip's label set) its accuracy against the folder labels. A bar per variant on a terminal; in a
    log, one line each when done."""
    files = {"PyTorch fp32": dest / "model.safetensors", "ONNX fp32": dest / "onnx" / "model.onnx",
             "ONNX int8": dest / "onnx" / "model_quantized.onnx"}
    variants = []
    for name, file in files.items():
        if not file.is_file():
            continue
        variant = {"name": name, "file": file.relative_to(dest).as_posix(), "size_mb": file.stat().st_size / 1e6,
                   "accuracy": None, "latency_ms": None, "num_clips": len(clips)}
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
            if bar.disable:
                print(f"measuring {name} on --eval_dir: {len(clips)}/{len(clips)} clips", file=sys.stderr)
            if not multi_label:
                variant["accuracy"] = sum(p == label for p, (_, label) in zip(predicted, clips)) / len(clips)
        variants.append(variant)
    return variants
