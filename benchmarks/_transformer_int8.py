"""The transformer part of benchmarks/inference.py: a Wav2Vec2-base-sized classifier (random weights, built
from the config, nothing downloaded) in PyTorch fp32, ONNX fp32 and ONNX int8, on the same clips.

Random weights measure speed and size honestly; their agreement numbers are a stress test (near-tied
logits flip on the smallest change), not the accuracy of a trained model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def save_wav2vec2_base(folder: Path, initializer_range: float = 0.02) -> Path:
    """`Wav2Vec2Config()` is wav2vec2-base's architecture (95M parameters); a 1-s window for long files."""
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
    config = Wav2Vec2Config(num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                            label2id={label: i for i, label in enumerate(LABELS)}, initializer_range=initializer_range)
    config.max_length_seconds = 1.0
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(folder)
    return folder


def transformer_variants(work_dir: Path) -> dict[str, Path]:
    """PyTorch folder, ONNX fp32 file (exported once, reused on later runs) and int8 file (quantized on every run,
    so that it is always the current quantizer's)."""
    from hfspeech.export import export_onnx, quantize_int8

    model = save_wav2vec2_base(work_dir / "wav2vec2-base")
    onnx_dir = work_dir / "wav2vec2-base-onnx"
    fp32 = onnx_dir / "model.onnx"
    if not fp32.is_file():
        export_onnx(model, onnx_dir)
    return {"PyTorch fp32": model, "ONNX fp32": fp32, "ONNX int8": quantize_int8(fp32)}


def file_size_mb(path: Path) -> float:
    return (path / "model.safetensors" if path.is_dir() else path).stat().st_size / 1e6


def one_second_clips(clips: list[np.ndarray], rate: int = 16000) -> list[np.ndarray]:
    """Each clip cut or zero-padded to exactly 1 s: a group-norm Wav2Vec2 is batched by equal length only."""
    return [np.pad(c[:rate], (0, max(0, rate - len(c)))).astype(np.float32) for c in clips]
