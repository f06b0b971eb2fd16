"""The model card (README.md) of a staged run, from ``model_cards/audio_classification.md``.

Everything in it is read from the run folder (metrics.json, data_report.json, the classification report,
training_hyperparameters.json or trainer_state.json) or measured at staging; what was not measured says so.
The YAML metadata, including ``model-index``, is built with huggingface_hub's ``ModelCardData`` /
``EvalResult`` so the Hub parses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = Path(__file__).resolve().parents[2] / "model_cards" / "audio_classification.md"
HYPERPARAMETERS = ("model_type", "model_name_or_path", "learning_rate", "num_train_epochs",
                   "per_device_train_batch_size", "gradient_accumulation_steps", "weight_decay", "warmup_ratio",
                   "lr_scheduler_type", "max_length_seconds", "seed")
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


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _table(header: tuple, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def write_model_card(run: Path, dest: Path, repo_id: str, variants: list[dict], config: dict,
                     dataset_name: Optional[str], custom_code: bool) -> ModelCard:
    metrics, data_report = _read_json(run / "metrics.json"), _read_json(run / "data_report.json")
    hyper = _read_json(run / "training_hyperparameters.json")
    if not hyper:  # a run from before hfspeech wrote it: what trainer_state.json knows
        state = _read_json(run / "trainer_state.json")
        hyper = {"num_train_epochs": state.get("num_train_epochs"),
                 "per_device_train_batch_size": state.get("train_batch_size")}
    labels = [config["id2label"][str(i)] for i in range(len(config.get("id2label", {})))]
    base_model = hyper.get("model_name_or_path") or config.get("_name_or_path") or None
    hub_base_model = base_model if base_model and not Path(str(base_model)).exists() else None  # not a local path
    split = metrics.get("test_split", "test")
    splits = data_report.get("kept") or {k[4:-6]: v for k, v in metrics.items()
                                         if k.startswith("num_") and k.endswith("_clips")}
    eval_results = [EvalResult(task_type="audio-classification", dataset_type=dataset_name or "audiofolder",
                               dataset_name=dataset_name or "held-out test split", dataset_split=split,
                               metric_type=name, metric_name=name, metric_value=metrics[f"test_{name}"])
                    for name in ("accuracy", "macro_f1") if f"test_{name}" in metrics]
    card_data = ModelCardData(
        library_name="transformers", pipeline_tag="audio-classification",
        tags=["audio-classification", "hfspeech", config["model_type"]] + (["custom_code"] if custom_code else []),
        datasets=[dataset_name] if dataset_name else None, metrics=["accuracy", "f1"], base_model=hub_base_model,
        model_name=repo_id.split("/")[-1], eval_results=eval_results or None,
    )
    rate = config.get("sampling_rate") or _read_json(dest / "preprocessor_config.json").get("sampling_rate")
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), repo_id=repo_id, model_name=repo_id.split("/")[-1],
        model_description=config["model_type"] + (f", fine-tuned from {base_model}" if base_model else ""),
        sampling_rate=rate, num_labels=len(labels), window_seconds=config.get("max_length_seconds", "a few"),
        labels_table=_table(("id", "label"), list(enumerate(labels))),
        data_section=_data_section(dataset_name, splits, data_report.get("num_skipped", 0)),
        hyperparameters_table=_table(("hyperparameter", "value"),
                                     [(k, hyper[k]) for k in HYPERPARAMETERS if hyper.get(k) is not None]),
        results_section=_results_section(metrics, split, splits),
        per_class_table=_per_class_table(_read_json(run / "test_classification_report.json"), labels),
        confusion_matrix="![confusion matrix](test_confusion_matrix.png)"
        if (dest / "test_confusion_matrix.png").is_file() else "",
        variants_table=_variants_table(variants),
        code_note="the model's code is in this repo, hence `trust_remote_code=True`; with hfspeech installed "
                  "and imported its own classes are used" if custom_code else "a transformers model",
        onnx_usage=ONNX_USAGE.format(repo_id=repo_id, rate=rate)
        if any(v["file"] == "onnx/model.onnx" for v in variants) else "",
    )
    card.save(dest / "README.md")
    return card


def _data_section(dataset_name: Optional[str], splits: dict, num_skipped: int) -> str:
    if not splits:
        return "Not recorded in the run folder."
    sizes = ", ".join(f"{name} {n}" for name, n in splits.items())
    return (f"{dataset_name or 'A local audio data set'}; clips per split: {sizes}; "
            f"files skipped as unusable: {num_skipped}.")


def _results_section(metrics: dict, split: str, splits: dict) -> str:
    if "test_accuracy" not in metrics:
        return "No test metrics in the run folder: not evaluated."
    return (f"On the {split} split ({splits.get(split, '?')} clips): accuracy {metrics['test_accuracy']:.3f}, "
            f"macro-F1 {metrics['test_macro_f1']:.3f}.")


def _per_class_table(report: dict, labels: list[str]) -> str:
    rows = [(label, f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1-score']:.3f}", int(r["support"]))
            for label, r in report.items() if label in labels]
    return _table(("label", "precision", "recall", "F1", "clips"), rows) if rows else ""


def _variants_table(variants: list[dict]) -> str:
    rows = []
    for v in variants:
        measured = v["accuracy"] is not None
        rows.append((v["name"], f"`{v['file']}`", f"{v['size_mb']:.3f} MB",
                     f"{v['accuracy']:.3f} on {v['num_clips']} clips" if measured else "not measured",
                     f"{v['latency_ms']:.2f} ms" if measured else "not measured"))
    return _table(("variant", "file", "size", "accuracy", "mean latency per clip"), rows)
