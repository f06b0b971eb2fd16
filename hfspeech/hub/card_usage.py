"""The model card's usage notes beside its snippets: what transformers' pipeline hears of a clip (`pipeline_note`),
and the onnxruntime snippets (`onnx_usage`).

transformers' `audio-classification` pipeline gives the feature extractor the whole clip in one call: Whisper's and
AST's extractors cut it to their fixed input length (Whisper's `n_samples`: 1 s for a model trained on 1-s crops),
the others pass it whole to a model trained on crops. `hfspeech predict` scores a longer clip in windows over the whole
of it, so the snippet alone read as if it did the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hfspeech.hub.card_markdown import measured
from hfspeech.models import is_baseline
from hfspeech.models.config_json import read_run_record
from hfspeech.models.scores import is_multi_label

FIXED_WINDOW_EXTRACTORS = ("WhisperFeatureExtractor", "ASTFeatureExtractor")  # cut every clip to one length
ONNX_USAGE = '''
With onnxruntime alone (the front end is in the graph: raw {rate} Hz audio in):

```python
import numpy as np, onnxruntime, soundfile
from huggingface_hub import hf_hub_download

session = onnxruntime.InferenceSession(hf_hub_download("{repo_id}", "onnx/model.onnx"))
audio, rate = soundfile.read("clip.wav", dtype="float32")  # mono, {rate} Hz
audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)  # the feature extractor's normalisation
logits = session.run(None, {{"input_values": audio[None], "attention_mask": np.ones((1, len(audio)), np.int64)}})[0]
```
'''
# Pretrained families (Whisper, Wav2Vec2 ...) export the model after their feature extractor: the extractor makes
# the graph's inputs (Whisper's log-mel window and, for clip pooling, its per-mel-frame mask).
ONNX_EXTRACTOR_USAGE = '''
With onnxruntime (the graph takes the feature extractor's output: the extractor comes from this repo):

```python
import numpy as np, onnxruntime, soundfile
from huggingface_hub import hf_hub_download
from transformers import AutoFeatureExtractor

session = onnxruntime.InferenceSession(hf_hub_download("{repo_id}", "onnx/model.onnx"))
extractor = AutoFeatureExtractor.from_pretrained("{repo_id}")
audio, rate = soundfile.read("clip.wav", dtype="float32")  # mono, {rate} Hz
inputs = extractor(audio, sampling_rate=rate, return_attention_mask=True, return_tensors="np")
logits = session.run(None, {{i.name: inputs[i.name].astype(np.int64 if i.name == "attention_mask" else np.float32)
                             for i in session.get_inputs()}})[0]
```
'''
ONNX_MULTI_LABEL_NOTE = ("\nThe logits are one per label and independent: `1 / (1 + np.exp(-logits))` is each label's "
                         "score, and a label is present when its score is at or above its threshold in the Labels "
                         "table (`label_thresholds` in config.json).\n")


def pipeline_window_seconds(dest: Path) -> Optional[float]:
    """The input length the staged feature extractor cuts every clip to (`models.inputs.extractor_window_seconds`),
    None for one that takes any length. Loaded by the transformers class preprocessor_config.json names:
    AutoFeatureExtractor would ask about a baseline's remote code."""
    name = read_run_record(dest / "preprocessor_config.json").get("feature_extractor_type")
    if name not in FIXED_WINDOW_EXTRACTORS:
        return None
    import transformers

    from hfspeech.models.inputs import extractor_window_seconds

    try:
        return extractor_window_seconds(getattr(transformers, name).from_pretrained(dest))
    except Exception:  # an extractor transformers cannot read: the card claims nothing of it
        return None


def pipeline_note(dest: Path, config: dict) -> str:
    """What the pipeline snippet scores of a clip longer than the model's window, against `hfspeech predict`'s
    windows; "" where neither the extractor nor the config tells a window."""
    window, crop = pipeline_window_seconds(dest), config.get("max_length_seconds")
    if window:
        return (f"The pipeline scores one window, the first {window:g} s of a clip: its feature extractor cuts off "
                "the rest. `hfspeech predict` (below) scores a longer clip in overlapping windows over the whole of "
                "it.")
    if measured(crop) and crop > 0:
        return (f"The pipeline scores a clip whole, in one pass, though the model was trained on {crop:g}-s crops: "
                f"`hfspeech predict` (below) scores a longer clip in overlapping {crop:g}-s windows and by default "
                "averages them.")
    return ""


def onnx_usage(variants: list[dict], config: dict, repo_id: str, rate) -> str:
    """The onnxruntime snippet where the ONNX file is staged: raw audio into a baseline's graph, the feature
    extractor's output into a pretrained family's; with the thresholds for a multi-label model."""
    if not any(v["file"] == "onnx/model.onnx" for v in variants):
        return ""
    usage = ONNX_USAGE if is_baseline(config["model_type"]) else ONNX_EXTRACTOR_USAGE
    return usage.format(repo_id=repo_id, rate=rate) + (ONNX_MULTI_LABEL_NOTE if is_multi_label(config) else "")
