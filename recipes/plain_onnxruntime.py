"""Run an hfspeech ONNX export with no hfspeech, transformers or optimum: numpy, onnxruntime, soundfile and soxr.

    python recipes/plain_onnxruntime.py runs/kws/onnx clip.wav other.flac
    python recipes/plain_onnxruntime.py runs/kws/onnx/model_quantized.onnx clip.wav --top_k 5

Prints what `hfspeech predict` prints for the baselines (CNN, BC-ResNet, LSTM; multi-label with its thresholds):
`path: label (score), ...`, `[N windows]` for a file longer than the model's clip, `active: ...` for a multi-label
model. Why a script: the graph is only part of the model. Before it, predict downmixes, resamples, trims (models
trained with --trim_silence), cuts windows and normalises each one; skip a step and labels change (docs/export.md,
"Run an export without hfspeech", lists them with what each costs). This file is that contract, step by step,
to copy into a deployment.

The facts come from the export folder's config.json and preprocessor_config.json; a `.onnx` alone carries them
in its metadata (`metadata_props`, written by `hfspeech export`). A Whisper export is refused: its graph takes a
log-mel `input_features`, which transformers' WhisperFeatureExtractor computes; this script feeds waveforms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile
import soxr  # the resampler predict uses: linear interpolation (np.interp) changed 5 of 20 labels from 8 kHz

STEREO_GAIN = np.float32(np.sqrt(0.5))  # two channels mix as (L + R) / sqrt(2), as ffmpeg mixes them
TRIM_FRAME, TRIM_HOP = 512, 128  # librosa's trim framing, centred frames (hfspeech.data.samples)
NORMALIZE_EPSILON = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean unit-variance: (x - mean) / sqrt(var + 1e-7)
DEFAULT_WINDOW_SECONDS = 10.0  # a model whose config has no max_length_seconds
DEFAULT_THRESHOLD = 0.5  # a multi-label model's label without a tuned threshold
MULTI_LABEL = "multi_label_classification"
# What `hfspeech export` writes into metadata_props (JSON text each); other tools add their own (onnx.infer).
METADATA_KEYS = ("id2label", "sampling_rate", "max_length_seconds", "do_normalize", "problem_type",
                 "label_thresholds", "trim_silence_top_db")


class ExportError(Exception):
    """A problem with the export or an audio file, printed as one line."""


def model_file(path: Path) -> Path:
    """The `.onnx` to run: the file given, or the folder's `model.onnx` (fp32; name the int8 file to run it)."""
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file (give an export folder or a .onnx file)")
    return path


def model_facts(onnx_path: Path, session: onnxruntime.InferenceSession) -> dict:
    """config.json and preprocessor_config.json beside the file merged; the file's own metadata when they are
    absent (a `.onnx` copied alone). Values in the metadata are JSON text."""
    folder, facts = onnx_path.parent, {}
    for name in ("preprocessor_config.json", "config.json"):
        if (folder / name).is_file():
            facts.update(json.loads((folder / name).read_text()))
    if "id2label" not in facts:
        metadata = session.get_modelmeta().custom_metadata_map
        facts = {key: json.loads(metadata[key]) for key in METADATA_KEYS if key in metadata}
    if "id2label" not in facts:
        raise ExportError(f"{onnx_path}: no config.json beside it and no labels in its metadata (export it again "
                          "with hfspeech export, or copy the export folder's JSON files beside it)")
    return facts


def load_mono(path: str, rate: int) -> np.ndarray:
    """The file as float32 mono at the model's rate: stereo mixed as (L + R) / sqrt(2), more channels averaged,
    resampled with soxr (its default, HQ)."""
    try:
        samples, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile's own errors name the problem
        raise ExportError(f"{path}: cannot be read ({error})") from None
    if samples.shape[0] == 0:
        raise ExportError(f"{path}: has no samples")
    if samples.shape[1] == 2:
        mono = (samples[:, 0] + samples[:, 1]) * STEREO_GAIN
    else:
        mono = samples.mean(axis=1, dtype=np.float32)
    return mono if file_rate == rate else soxr.resample(mono, file_rate, rate).astype(np.float32)


def trim_silence(samples: np.ndarray, top_db: float) -> np.ndarray:
    """Cut the lead-in and tail quieter than `top_db` below the loudest frame (librosa's trim: RMS of 512-sample
    frames every 128, centred), as predict does for a model trained with --trim_silence; all of it if nothing is
    louder."""
    padded = np.pad(samples, TRIM_FRAME // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, TRIM_FRAME)[::TRIM_HOP]
    power = np.square(np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=-1)))
    decibels = 10.0 * np.log10(np.maximum(1e-10, power)) - 10.0 * np.log10(np.maximum(1e-10, power.max()))
    loud = np.flatnonzero(decibels > -top_db)
    if not loud.size:
        return samples
    return samples[int(loud[0]) * TRIM_HOP : min(samples.size, (int(loud[-1]) + 1) * TRIM_HOP)]


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Windows every `hop` samples, one more ending at the last sample when they miss it; a file no longer than a
    window is one window of all of it (`hfspeech.inference.windows.WindowSlicer`)."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, hop))
    return starts + [length - window] if starts[-1] + window < length else starts


def window_scores(session: onnxruntime.InferenceSession, clip: np.ndarray, facts: dict) -> np.ndarray:
    """One window's scores: normalised on its own samples when `do_normalize`, run alone (no padding), then a
    softmax, or a float64 sigmoid per label for a multi-label model."""
    if facts.get("do_normalize"):
        clip = (clip - clip.mean()) / np.sqrt(clip.var() + NORMALIZE_EPSILON)
    feed = {"input_values": clip[None].astype(np.float32)}
    if "attention_mask" in {node.name for node in session.get_inputs()}:
        feed["attention_mask"] = np.ones((1, clip.size), dtype=np.int64)
    logits = session.run(None, feed)[0][0]
    if facts.get("problem_type") == MULTI_LABEL:
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    exp = np.exp(logits - logits.max())
    return (exp / exp.sum()).astype(np.float32)


def file_scores(session: onnxruntime.InferenceSession, path: str, facts: dict) -> tuple[np.ndarray, int]:
    """(the mean of the file's window scores, the number of windows): the steps of predict, in its order."""
    rate = int(facts["sampling_rate"])
    samples = load_mono(path, rate)
    if facts.get("trim_silence_top_db") is not None:
        samples = trim_silence(samples, float(facts["trim_silence_top_db"]))
    seconds = float(facts.get("max_length_seconds") or DEFAULT_WINDOW_SECONDS)
    window, hop = int(round(seconds * rate)), max(1, int(round(seconds / 2 * rate)))
    starts = window_starts(samples.size, window, hop)
    scores = [window_scores(session, samples[start : start + window], facts) for start in starts]
    return np.mean(scores, axis=0), len(starts)


def thresholds(facts: dict, labels: list[str]) -> np.ndarray:
    """Per-label thresholds in id order: config.json's `label_thresholds` ({label: threshold}), 0.5 elsewhere."""
    saved = facts.get("label_thresholds") or {}
    return np.array([saved.get(label, DEFAULT_THRESHOLD) for label in labels], dtype=np.float32)


def result_line(path: str, scores: np.ndarray, windows: int, facts: dict, top_k: int) -> str:
    """predict's line: the top k labels and every active label ranked below them, best first."""
    labels = [facts["id2label"][str(index)] for index in range(len(facts["id2label"]))]
    multi_label = facts.get("problem_type") == MULTI_LABEL
    active = [labels[i] for i in np.flatnonzero(scores >= thresholds(facts, labels))] if multi_label else []
    order = [i for rank, i in enumerate(np.argsort(-scores, kind="stable")) if rank < top_k or labels[i] in active]
    line = f"{path}: " + ", ".join(f"{labels[i]} ({scores[i]:.3f})" for i in order)
    line += f"  [{windows} windows]" if windows > 1 else ""
    return line + (f"  active: {', '.join(active) or '-'}" if multi_label else "")


def open_session(path: Path) -> onnxruntime.InferenceSession:
    """A CPU session; without `QDQPropagationTransformer`, which slows a static int8 file's max pooling 13x."""
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                            disabled_optimizers=["QDQPropagationTransformer"])
    except Exception as error:
        raise ExportError(f"{path}: onnxruntime cannot load it ({str(error).splitlines()[0]})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an hfspeech ONNX export folder or .onnx file")
    parser.add_argument("files", nargs="+", help="audio files (anything libsndfile reads)")
    parser.add_argument("--top_k", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        onnx_path = model_file(args.model)
        session = open_session(onnx_path)
        if "input_features" in {node.name for node in session.get_inputs()}:
            raise ExportError(f"{onnx_path}: a Whisper export takes log-mel input_features [batch, 80, frames] "
                              "(transformers' WhisperFeatureExtractor), not waveforms: run it with hfspeech predict")
        facts = model_facts(onnx_path, session)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = 0
    for path in args.files:
        try:
            print(result_line(path, *file_scores(session, path, facts), facts, args.top_k), flush=True)
        except ExportError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
