"""Evaluate a trained model on labelled data in any input layout (`hfspeech evaluate`).

The data's labels must be labels the model knows: a clip labelled with anything else stops the run
with an error naming the file and the label, rather than being scored as a silent mistake.

A multi-label model (`config.problem_type == "multi_label_classification"`) reads each clip's label
list (`--label_separator`), scores clips with a sigmoid per label, and reports mAP, ROC-AUC, F1 and
subset accuracy at the thresholds saved in its config (`label_thresholds`), as training's test report.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

from hfspeech.data.loading import encode_labels, load_audio_dataset
from hfspeech.data.prepare import prepare_dataset
from hfspeech.evaluation.metrics import MULTI_LABEL
from hfspeech.evaluation.report import write_evaluation_report, write_multilabel_report
from hfspeech.evaluation.thresholds import thresholds_from_config
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.training.arguments import DataArguments


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Model folder (or Hub id) to evaluate."})
    output_dir: str = field(default="runs/evaluation", metadata={"help": "Where the report files go."})
    split: Optional[str] = field(default=None, metadata={"help": "Split to evaluate (default: test, else all)."})
    batch_size: int = field(default=16, metadata={"help": "Clips per forward pass."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from a Hub repo."})


def evaluate_model(eval_args: EvaluateArguments, data_args: DataArguments) -> dict:
    classifier = AudioClassifier.from_pretrained(
        eval_args.model, trust_remote_code=eval_args.trust_remote_code, batch_size=eval_args.batch_size
    )
    label_names = [classifier.id2label[i] for i in range(len(classifier.id2label))]
    raw = load_audio_dataset(**data_args.source())
    split = eval_args.split or ("test" if "test" in raw else next(iter(raw)))
    if split not in raw:
        raise ValueError(f"no split '{split}' in the data (splits: {list(raw)})")
    multi_label = getattr(classifier.config, "problem_type", None) == MULTI_LABEL
    raw = encode_labels(raw.__class__({split: raw[split]}), label_names, multi_label=multi_label,
                        separator=data_args.label_separator)
    prepared, report = prepare_dataset(raw, classifier.sampling_rate, **data_args.preparation())
    if multi_label:
        metrics = _evaluate_multi_label(classifier, prepared[split], label_names, eval_args.output_dir, split)
    else:
        metrics = _evaluate_single_label(classifier, prepared[split], label_names, eval_args.output_dir, split)
    metrics.update({"split": split, "num_clips": len(prepared[split]), "num_skipped_files": report.num_skipped})
    with open(os.path.join(eval_args.output_dir, f"{split}_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    report.save(os.path.join(eval_args.output_dir, "data_report.json"))
    return metrics


def _evaluate_single_label(classifier: AudioClassifier, clips, label_names: list[str], output_dir: str,
                           split: str) -> dict:
    clips = clips.with_format("numpy")
    predictions = []
    for row in tqdm(clips, desc=f"evaluating {split}", unit="clip"):
        predictions.append(classifier.classify_waveform(row["input_values"], top_k=1).labels[0])
    ids = {name: i for i, name in enumerate(label_names)}
    predicted = np.array([ids[name] for name in predictions])
    return write_evaluation_report(output_dir, predicted, np.asarray(clips["label"]), label_names, prefix=split)


def _evaluate_multi_label(classifier: AudioClassifier, clips, label_names: list[str], output_dir: str,
                          split: str) -> dict:
    """Each clip's sigmoid scores (mean over windows, as `hfspeech predict`), scored at the saved thresholds."""
    index = {name: i for i, name in enumerate(label_names)}
    scores = np.zeros((len(clips), len(label_names)))
    references = np.zeros((len(clips), len(label_names)), dtype=np.int64)
    for row, clip in enumerate(tqdm(clips.with_format("numpy"), desc=f"evaluating {split}", unit="clip")):
        prediction = classifier.classify_waveform(clip["input_values"], top_k=len(label_names))
        scores[row, [index[name] for name in prediction.labels]] = prediction.scores
        references[row, np.asarray(clip["label"], dtype=np.int64)] = 1
    thresholds = thresholds_from_config(classifier.config, label_names)
    metrics = write_multilabel_report(output_dir, scores, references, label_names, thresholds, prefix=split)
    metrics["label_thresholds"] = dict(zip(label_names, thresholds.tolist()))
    return metrics
