"""Tiny, randomly initialised pretrained-model architectures, saved like real checkpoints.

CPU smoke runs and tests cannot download `facebook/wav2vec2-base`, but they should exercise the very
same code path: `from_pretrained(folder)` -> fine-tune -> `save_pretrained` -> `pipeline`. These
helpers build a model of the real architecture (same classes; for the self-supervised encoders the
same feature encoder layout and 320x downsampling; for AST the same patch embedding of a log-mel
spectrogram; for Whisper the same 80-bin log-mel input and 30-s positional table), only with a few small
layers, and save it with its feature extractor.

transformers (and torch) are imported inside the functions that build: `hfspeech tiny-model --help` reads only
`SSL_MODEL_TYPES`, and answered after seconds of imports it never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from hfspeech.errors import writing_to
from hfspeech.models.fingerprint import with_usual_modes
from hfspeech.output_folders import nothing_is_ours
from hfspeech.output_staging import written_beside

SSL_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "audio-spectrogram-transformer", "whisper")

TINY_SSL_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    # Three conv layers with strides 5 x 8 x 8 = 320: the real models' 20 ms frame rate at 16 kHz.
    conv_dim=(32, 32, 32),
    conv_stride=(5, 8, 8),
    conv_kernel=(10, 8, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    classifier_proj_size=16,
    # "layer" norm in the feature encoder (as in wav2vec2-large / XLS-R), which takes an attention mask.
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    mask_time_prob=0.0,
    layerdrop=0.0,
)

# wav2vec2-base / hubert-base style: group norm over time in the first conv layer, post-layer-norm encoder.
# Such a model takes no attention mask (its feature extractor returns none), and zero padding changes its
# output; `hfspeech.inference.classifier.AudioClassifier` batches it by equal length only. Pass as overrides:
# `save_tiny_ssl_model(folder, "wav2vec2", **GROUP_NORM_FEATURE_ENCODER)`.
GROUP_NORM_FEATURE_ENCODER = dict(feat_extract_norm="group", do_stable_layer_norm=False)

# AST: 16 mel bins x 64 frames (0.64 s) in 16x16 patches with stride 10.
TINY_AST_CONFIG = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    num_mel_bins=16, max_length=64, patch_size=16, frequency_stride=10, time_stride=10,
)


# Whisper: the real 80-bin log-mel front end and 30-s positional table (1,500 positions), as every OpenAI
# checkpoint has, so fine-tuning cuts it to the clip exactly as it cuts whisper-tiny.en; two small layers.
TINY_WHISPER_CONFIG = dict(
    d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
    decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80, classifier_proj_size=16, vocab_size=64,
    max_target_positions=16, mask_time_prob=0.0,
)
TINY_CONFIGS = {"audio-spectrogram-transformer": TINY_AST_CONFIG, "whisper": TINY_WHISPER_CONFIG}


def tiny_ssl_config(model_type: str = "wav2vec2", labels: Optional[Sequence[str]] = None, **overrides):
    """A small config of a real architecture (`wav2vec2`, `hubert`, `wavlm`, `audio-spectrogram-transformer`)."""
    from transformers import AutoConfig

    if model_type not in SSL_MODEL_TYPES:
        raise ValueError(f"model_type must be one of {SSL_MODEL_TYPES}, got {model_type!r}")
    labels = list(labels or ["no", "yes"])
    base = TINY_CONFIGS.get(model_type, TINY_SSL_CONFIG)
    settings = {**base, **overrides}
    if model_type == "wavlm":
        settings.setdefault("num_buckets", 16)
        settings.setdefault("max_bucket_distance", 64)
    return AutoConfig.for_model(
        model_type, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, **settings,
    )


def save_tiny_ssl_model(output_dir: str, model_type: str = "wav2vec2", labels: Optional[Sequence[str]] = None,
                        sampling_rate: int = 16000, seed: int = 0, **overrides) -> Path:
    """Write a tiny randomly initialised `model_type` classifier and its feature extractor to `output_dir`.

    The folder loads with `AutoModelForAudioClassification.from_pretrained` like any Hub checkpoint.
    """
    import torch
    from transformers import (AutoModelForAudioClassification, ASTFeatureExtractor, Wav2Vec2FeatureExtractor,
                              WhisperFeatureExtractor)

    from hfspeech.models.whisper.modeling_whisper import POSITIONS_PER_SECOND

    torch.manual_seed(seed)
    config = tiny_ssl_config(model_type, labels, **overrides)
    model = AutoModelForAudioClassification.from_config(config)
    if model_type == "audio-spectrogram-transformer":
        extractor = ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length,
                                        sampling_rate=sampling_rate)
    elif model_type == "whisper":  # pads to the window its positional table covers (30 s unless overridden)
        extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=sampling_rate,
                                            chunk_length=config.max_source_positions // POSITIONS_PER_SECOND)
    else:
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True,
            return_attention_mask=config.feat_extract_norm == "layer",
        )
    path = Path(output_dir)
    # Written beside the folder and renamed in whole (`output_staging.written_beside`), replacing only the files it
    # writes: written in place, a full disk left config.json alone, which `hfspeech tiny-model` then refused.
    with writing_to(path, "nothing was written (the folder is as it was); make room and run again"), \
            written_beside(path, earlier=nothing_is_ours) as new:
        model.save_pretrained(new)
        extractor.save_pretrained(new)
        with_usual_modes(new)  # safetensors writes 0600 (`models.fingerprint`)
    return path
