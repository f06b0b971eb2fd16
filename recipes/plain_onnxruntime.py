"""Run an hfspeech ONNX export with no hfspeech, transformers or optimum: numpy, onnxruntime, soundfile and soxr.

    python recipes/plain_onnxruntime.py runs/kws/onnx clip.wav other.flac
    python recipes/plain_onnxruntime.py runs/kws/onnx/model_quantized.onnx clip.wav --top_k 5

Prints what `hfspeech predict` prints, with its defaults (`--aggregate mean`, the model's window, half a window's
hop), for the baselines (CNN, BC-ResNet, LSTM; multi-label with its thresholds) and Whisper classifiers (other
exports, AST or wav2vec2, are refused):
`path: label (score), ...`, `[N windows]` for a file longer than the model's clip, `active: ...` for a multi-label
model. Why a script: the graph is only part of the model. Before it, predict downmixes, resamples, trims (models
trained with --trim_silence), cuts windows and normalises each one; skip a step and labels change (docs/export.md,
"Run an export without hfspeech", lists them with what each costs). This file is that contract, step by step,
to copy into a deployment.

The facts come from the export folder's config.json and preprocessor_config.json; a `.onnx` alone carries them
in its metadata (`metadata_props`, written by `hfspeech export`). A Whisper export takes a log-mel
`input_features [1, 80, frames]` instead of waveforms: `whisper_log_mel` is transformers' WhisperFeatureExtractor in
numpy (its slaney mel filter bank built from preprocessor_config.json), each window padded with silence to the
window the model was cut to (`n_samples`).
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
# WhisperFeatureExtractor's STFT sizes, for a Whisper `.onnx` alone (its metadata has no front end; its graph's
# input says the frame count); its filter bank always ends at 8 kHz, and log10 powers are floored at 1e-10
WHISPER_DEFAULTS = {"n_fft": 400, "hop_length": 160, "padding_value": 0.0}
WHISPER_TOP_HZ, WHISPER_FLOOR, WHISPER_RANGE = 8000.0, 1e-10, 8.0
# What `hfspeech export` writes into metadata_props (JSON text each); other tools add their own (onnx.infer).
METADATA_KEYS = ("id2label", "sampling_rate", "max_length_seconds", "do_normalize", "problem_type",
                 "label_thresholds", "trim_silence_top_db", "model_type")


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
    kind = str(facts.get("model_type", "hfspeech-"))  # exports made before the metadata: not checked
    if not kind.startswith("hfspeech-") and "whisper" not in kind:
        raise ExportError(f"{onnx_path}: a {kind!r} export, whose inputs come from its transformers feature "
                          "extractor; this script runs hfspeech's baselines and Whisper (use hfspeech predict)")
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


def slaney_mel(hertz: np.ndarray) -> np.ndarray:
    """Hz to mels on Slaney's scale (linear below 1 kHz, logarithmic above), as librosa and Whisper use it."""
    return np.where(hertz < 1000.0, 3.0 * hertz / 200.0, 15.0 + np.log(np.maximum(hertz, 1e-10) / 1000.0) * 27.0 /
                    np.log(6.4))


def slaney_hertz(mels: np.ndarray) -> np.ndarray:
    """Mels back to Hz: the filter edges are spaced evenly in mels and placed on the FFT bins in Hz."""
    return np.where(mels < 15.0, 200.0 * mels / 3.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels - 15.0)))


def whisper_filter_bank(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels]: triangles between mel-spaced edges from 0 Hz to 8 kHz, drawn over the FFT bins in
    Hz, each scaled by 2 / its width in Hz (slaney norm): transformers' `mel_filter_bank` as Whisper's extractor
    calls it. Built here because the folder does not carry it."""
    edges = slaney_hertz(np.linspace(0.0, slaney_mel(np.array(WHISPER_TOP_HZ)), n_mels + 2))
    bins = np.linspace(0, rate // 2, n_fft // 2 + 1)[:, None]
    rising = (bins - edges[None, :-2]) / np.diff(edges)[:-1]
    falling = (edges[None, 2:] - bins) / np.diff(edges)[1:]
    return np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))


def whisper_log_mel(clip: np.ndarray, facts: dict) -> np.ndarray:
    """[n_mels, n_samples // hop] log-mel of one window, as WhisperFeatureExtractor computes it: the clip padded
    with silence (cut) to `n_samples`; periodic Hann frames of n_fft every hop, centred with reflected ends; power
    spectrum through the filter bank; the last frame dropped; log10 floored at 1e-10, then at 8 below the window's
    maximum; (x + 4) / 4."""
    n_fft, hop, size = facts["n_fft"], facts["hop_length"], facts["n_samples"]
    padded = np.full(size, facts["padding_value"], dtype=np.float64)
    padded[: min(size, clip.size)] = clip[:size]
    framed = np.lib.stride_tricks.sliding_window_view(np.pad(padded, n_fft // 2, mode="reflect"), n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(framed * window, axis=-1)) ** 2
    mel = (power[:-1] @ facts["mel_filters"]).T
    log = np.log10(np.maximum(mel, WHISPER_FLOOR))
    return ((np.maximum(log, log.max() - WHISPER_RANGE) + 4.0) / 4.0).astype(np.float32)


def whisper_front_end(onnx_path: Path, session: onnxruntime.InferenceSession, facts: dict) -> dict:
    """The extractor's sizes from preprocessor_config.json, else its defaults and the graph's frame count; and its
    filter bank."""
    shape = next(node.shape for node in session.get_inputs() if node.name == "input_features")
    facts = {**WHISPER_DEFAULTS, "feature_size": shape[1], **facts}
    if "n_samples" not in facts:
        if not isinstance(shape[2], int):
            raise ExportError(f"{onnx_path}: input_features has no fixed frame count ({shape[2]}) and no "
                              "preprocessor_config.json says the window: copy the export folder's JSON files beside it")
        facts["n_samples"] = shape[2] * facts["hop_length"]
    return {**facts, "mel_filters": whisper_filter_bank(int(facts["sampling_rate"]), facts["n_fft"],
                                                        facts["feature_size"])}


def graph_feed(session: onnxruntime.InferenceSession, clip: np.ndarray, facts: dict) -> dict:
    """The graph's inputs for one window: waveform `input_values` (normalised on the window's own samples when
    `do_normalize`) with a mask of ones, or Whisper's `input_features` with, for a clip-pooling model, a mask of
    the mel frames the clip covers (frame f holds sample f * hop)."""
    inputs = {node.name: node.type for node in session.get_inputs()}
    if "input_features" in inputs:
        feed = {"input_features": whisper_log_mel(clip, facts)[None]}
        frames = feed["input_features"].shape[-1]
        mask = (np.arange(frames) * facts["hop_length"] < clip.size)[None]
    else:
        if facts.get("do_normalize"):
            clip = (clip - clip.mean()) / np.sqrt(clip.var() + NORMALIZE_EPSILON)
        feed = {"input_values": clip[None].astype(np.float32)}
        mask = np.ones((1, clip.size), dtype=bool)
    if "attention_mask" in inputs:
        feed["attention_mask"] = mask.astype(np.int32 if inputs["attention_mask"] == "tensor(int32)" else np.int64)
    return feed


def window_scores(session: onnxruntime.InferenceSession, clip: np.ndarray, facts: dict) -> np.ndarray:
    """One window's scores: run alone (no padding but Whisper's), then a softmax, or a float64 sigmoid per label
    for a multi-label model."""
    logits = session.run(None, graph_feed(session, clip, facts))[0][0]
    if facts.get("problem_type") == MULTI_LABEL:
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    exp = np.exp(logits - logits.max())
    return (exp / exp.sum()).astype(np.float32)


def window_of_extractor(facts: dict, rate: int):
    """A config without max_length_seconds (a checkpoint made outside hfspeech): Whisper's window is the length its
    extractor pads every clip to, `n_samples`, as `hfspeech predict` takes it (`models.inputs.window_seconds_of`)."""
    return facts["n_samples"] / rate if facts.get("n_samples") else None


def file_scores(session: onnxruntime.InferenceSession, path: str, facts: dict) -> tuple[np.ndarray, int]:
    """(the mean of the file's window scores, the number of windows): the steps of predict, in its order."""
    rate = int(facts["sampling_rate"])
    samples = load_mono(path, rate)
    if facts.get("trim_silence_top_db") is not None:
        samples = trim_silence(samples, float(facts["trim_silence_top_db"]))
    seconds = float(facts.get("max_length_seconds") or window_of_extractor(facts, rate) or DEFAULT_WINDOW_SECONDS)
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
        facts = model_facts(onnx_path, session)
        if "input_features" in {node.name for node in session.get_inputs()}:
            facts = whisper_front_end(onnx_path, session, facts)
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
