"""A transformers `pipeline("audio-classification")` that knows multi-label models.

transformers' `AudioClassificationPipeline` applies a softmax unless told otherwise, and a
`function_to_apply` given when the pipeline is built does not stick: each call's own default
("softmax") replaces it. For a multi-label model (`config.problem_type ==
"multi_label_classification"`) that gives scores that compete with each other and sum to 1, and it
knows nothing of the per-class thresholds saved in `config.label_thresholds`.

`audio_classification_pipeline(model)` returns the same pipeline class with two changes: when no
`function_to_apply` is given, a multi-label model's scores are sigmoids (a single-label model's stay
softmax), and each result of a multi-label model scored with a sigmoid also carries its label's
`threshold` and whether it is `active` (score >= threshold) -- the same rule as `AudioClassifier` (it uses the same
`hfspeech.models.scores.scores_from_logits` / `active_labels`); such results are the top k and every active label
ranked below them, as `AudioClassifier`, `hfspeech predict` and `serve` list them. `active_labels(results)` reads
the active labels back from a call's results. Arrays (bare, or `{"array"|"raw", "sampling_rate"}`) are read as
`AudioClassifier.score_waveform` reads them (`inference.waveforms`): integer PCM scaled, other rates resampled
with soxr, where transformers asks for torchaudio, which has no build for the torch hfspeech pins. A model trained
with `--trim_silence` (`config.trim_silence_top_db`) gets each clip (path, bytes or array) trimmed as its training
clips were (`data.samples.trimmed_as_trained`), as `hfspeech predict` trims it.

    classify = audio_classification_pipeline("runs/events")
    results = classify("clip.wav")            # every label, best first: {"label", "score", "threshold", "active"}
    active_labels(results)                    # e.g. ["beep", "hum"]
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
from transformers import AudioClassificationPipeline, pipeline

from hfspeech.data.audio import decode_audio
from hfspeech.data.samples import trim_top_db_of, trimmed_as_trained
from hfspeech.inference.classifier import Prediction
from hfspeech.inference.outputs import with_every_active_label
from hfspeech.inference.waveforms import waveform_at_rate
from hfspeech.models import register
from hfspeech.models.folder_checks import check_model_folder
from hfspeech.models.loading import is_local_path
from hfspeech.models.scores import active_labels as labels_at_threshold
from hfspeech.models.scores import is_multi_label, label_thresholds, scores_from_logits

# This module imports transformers' pipelines (torch) anyway, so registering costs nothing more here: a notebook
# that imported it, then called transformers' own `pipeline()` / `AutoModelForAudioClassification` on a run,
# got "Transformers does not recognize this architecture" (`hfspeech-cnn`).
register()


class MultiLabelAudioClassificationPipeline(AudioClassificationPipeline):
    """`AudioClassificationPipeline` with a sigmoid and per-label thresholds for multi-label models."""

    def _sanitize_parameters(self, top_k=None, function_to_apply=None, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(top_k=top_k,
                                                                        function_to_apply=function_to_apply, **kwargs)
        if function_to_apply is None:
            # Leave it out, so a choice made when the pipeline was built survives a call that makes none,
            # and `postprocess` picks by the model when neither did.
            postprocess.pop("function_to_apply", None)
        return preprocess, forward, postprocess

    def preprocess(self, inputs):
        rate = self.feature_extractor.sampling_rate
        if trim_top_db_of(self.model.config) is None:
            return super().preprocess(at_model_rate(inputs, rate))
        return super().preprocess(trimmed_as_trained(clip_at_model_rate(inputs, rate), self.model.config)[1])

    def postprocess(self, model_outputs, top_k: int = 5, function_to_apply: Optional[str] = None):
        config = self.model.config
        multi_label = is_multi_label(config)
        if function_to_apply is None:
            function_to_apply = "sigmoid" if multi_label else "softmax"
        if not (multi_label and function_to_apply == "sigmoid"):  # thresholds are on the sigmoid scale
            return super().postprocess(model_outputs, top_k=top_k, function_to_apply=function_to_apply)
        results = super().postprocess(model_outputs, top_k=len(config.id2label), function_to_apply="sigmoid")
        scores = scores_from_logits(model_outputs.logits[0].float().cpu().numpy(), config)
        active = labels_at_threshold(scores, config)
        thresholds = dict(zip((config.id2label[i] for i in range(len(config.id2label))), label_thresholds(config)))
        for result in results:
            result["threshold"] = float(thresholds[result["label"]])
            result["active"] = result["label"] in active
        return top_k_and_every_active(results, top_k, active)


def top_k_and_every_active(results: list[dict], top_k: int, active: list[str]) -> list[dict]:
    """Every label's result, best first, cut to the top k and every active label ranked below them: the rule of
    `AudioClassifier`, `hfspeech predict` and `serve` (`outputs.with_every_active_label`), applied to the
    pipeline's dicts. transformers' top 5 alone left out a label active for the clip ranked 6th."""
    ranked = Prediction("", [result["label"] for result in results], [result["score"] for result in results], 1,
                        active)
    kept = set(with_every_active_label(ranked, top_k).labels)
    return [result for result in results if result["label"] in kept]


def at_model_rate(inputs: Any, rate: int) -> Any:
    """A numpy array or an `{"array"|"raw", "sampling_rate"}` dict as mono float32 at `rate` (`waveform_at_rate`);
    paths, bytes and anything else go on to transformers unchanged."""
    if isinstance(inputs, np.ndarray):
        return waveform_at_rate(inputs, None, rate)
    if isinstance(inputs, dict) and "sampling_rate" in inputs and ("raw" in inputs or "array" in inputs):
        samples = inputs["raw"] if inputs.get("raw") is not None else inputs.get("array")
        return {"raw": waveform_at_rate(samples, inputs["sampling_rate"], rate), "sampling_rate": rate}
    return inputs


def clip_at_model_rate(inputs: Any, rate: int) -> np.ndarray:
    """Any pipeline input (a path, URL, file bytes, array or `{"array"|"raw", "sampling_rate"}` dict) as mono
    float32 at `rate`, for a model trained on trimmed clips: the trim needs the samples, so a path or bytes are
    decoded here as `hfspeech predict` decodes them (`data.audio.decode_audio`) rather than by transformers."""
    if isinstance(inputs, str) and inputs.startswith(("http://", "https://")):
        from urllib.request import urlopen

        with urlopen(inputs) as response:  # as transformers fetches a URL, then decoded as bytes
            inputs = response.read()
    if isinstance(inputs, (str, os.PathLike)):
        return decode_audio(str(inputs), rate)
    if isinstance(inputs, bytes):
        return decode_audio({"path": None, "bytes": inputs}, rate)
    if isinstance(inputs, dict) and "sampling_rate" not in inputs:  # transformers' own refusal of such a dict
        raise ValueError("a dict given to the audio-classification pipeline needs a 'raw' (or 'array') key holding "
                         "the samples and a 'sampling_rate' key holding their rate")
    inputs = at_model_rate(inputs, rate)
    return np.asarray(inputs["raw"] if isinstance(inputs, dict) else waveform_at_rate(inputs, None, rate))


def audio_classification_pipeline(model: Any, feature_extractor: Any = None, device: Any = None,
                                  **kwargs) -> MultiLabelAudioClassificationPipeline:
    """`transformers.pipeline("audio-classification", ...)` built as `MultiLabelAudioClassificationPipeline`.

    `model`: a model folder, Hub id or loaded model (any AutoModelForAudioClassification, hfspeech
    baselines included); other arguments go to `transformers.pipeline`. A local path that is not a model folder
    is a one-line `NotAModelError` (`models.folder_checks`), unless `feature_extractor` is given.
    """
    register()  # the baselines, with the Auto classes `pipeline` resolves a folder through
    if isinstance(model, (str, os.PathLike)) and is_local_path(str(model)) and feature_extractor is None:
        # as `AudioClassifier` checks it (its preprocessor_config.json too, unless an extractor is given): transformers
        # said "Repo id must be in the form 'repo_name'" for a missing folder, and listed 300 model types for one
        # without config.json
        check_model_folder(str(model), kwargs.get("trust_remote_code", False))
    return pipeline("audio-classification", model=model, feature_extractor=feature_extractor, device=device,
                    pipeline_class=MultiLabelAudioClassificationPipeline, **kwargs)


def active_labels(results: list[dict]) -> list[str]:
    """The labels a multi-label pipeline marked active in one call's results (in score order)."""
    return [result["label"] for result in results if result.get("active")]
