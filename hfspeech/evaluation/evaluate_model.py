"""Evaluate a trained model on labelled data in any input layout (`hfspeech evaluate`).

The data's labels must be labels the model knows: a clip labelled with anything else stops the run
with an error naming the file and the label, rather than being scored as a silent mistake.
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
from hfspeech.evaluation.report import write_evaluation_report
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
    raw = encode_labels(raw.__class__({split: raw[split]}), label_names)
    prepared, report = prepare_dataset(raw, classifier.sampling_rate, **data_args.preparation())
    clips = prepared[split].with_format("numpy")
    predictions = []
    for row in tqdm(clips, desc=f"evaluating {split}", unit="clip"):
        predictions.append(classifier.classify_waveform(row["input_values"], top_k=1).labels[0])
    ids = {name: i for i, name in enumerate(label_names)}
    predicted = np.array([ids[name] for name in predictions])
    metrics = write_evaluation_report(eval_args.output_dir, predicted, np.asarray(clips["label"]), label_names,
                                      prefix=split)
    metrics.update({"split": split, "num_clips": len(clips), "num_skipped_files": report.num_skipped})
    with open(os.path.join(eval_args.output_dir, f"{split}_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    report.save(os.path.join(eval_args.output_dir, "data_report.json"))
    return metrics
