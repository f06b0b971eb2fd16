"""The model card (README.md) of a staged run, from the template ``hfspeech/hub/templates/audio_classification.md``
(package data: a built wheel carries it).

Everything in it is read from the run folder (metrics.json, data_report.json, the classification report,
training_hyperparameters.json or trainer_state.json) or measured at staging; what was not measured says so.
The YAML metadata, including ``model-index``, is built with huggingface_hub's ``ModelCardData`` /
``EvalResult`` so the Hub parses it. What it says about how the model was trained and what its scores were
measured on is ``hfspeech.hub.card_training``'s.

A multi-label run (``config.problem_type == "multi_label_classification"``) gets its own wording and
numbers: the model returns every label whose sigmoid score reaches that label's own threshold
(``config.label_thresholds``), so it is described by mAP, ROC-AUC, micro-F1 and subset accuracy (metrics.json,
test_multilabel_report.json), with the label prevalence as mAP's chance level. Accuracy, a confusion matrix
and transformers' default softmax pipeline would all misdescribe it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hfspeech.data.samples import TRIM_CONFIG_ATTRIBUTE
from hfspeech.hub.card_data import data_origin
from hfspeech.hub.card_classes import (labels_table, multi_label_per_class_table, per_class_table,
                                       unscored_classes_note)
from hfspeech.hub.card_markdown import label_text, markdown_table, measured, number
from hfspeech.hub.card_variants import eval_kind, variants_table
from hfspeech.hub.card_usage import onnx_usage, pipeline_note
from hfspeech.hub.card_training import (data_source, described_base, hyperparameters_table, made_with_hfspeech,
                                        model_description, read_hyperparameters, test_set_note, window_text)
from hfspeech.hub.local_paths import hub_base_model
from hfspeech.models.config_json import DATA_REPORT_FILE, METRICS_FILE, read_run_record
from hfspeech.models.scores import DEFAULT_THRESHOLD, is_multi_label

TEMPLATE = resources.files("hfspeech.hub") / "templates" / "audio_classification.md"
# metrics.json key -> (model-index metric type, metric config, name): Hub metric ids (`macro_f1` is none, so the
# single-label macro-F1 is `f1` with config `macro`, as the multi-label results give theirs).
SINGLE_LABEL_RESULTS = {"test_accuracy": ("accuracy", None, "accuracy"), "test_macro_f1": ("f1", "macro", "macro-F1")}
MULTI_LABEL_RESULTS = {"test_map_macro": ("map", "macro", "mAP (macro)"),
                       "test_map_micro": ("map", "micro", "mAP (micro)"),
                       "test_roc_auc_macro": ("roc_auc", "macro", "ROC-AUC (macro)"),
                       "test_micro_f1": ("f1", "micro", "micro-F1"),
                       "test_subset_accuracy": ("subset_accuracy", None, "subset accuracy")}


def write_model_card(run: Path, dest: Path, repo_id: str, variants: list[dict], config: dict,
                     dataset_name: Optional[str], custom_code: bool, variant_notes: Sequence[str] = (),
                     license: Optional[str] = None) -> ModelCard:
    """README.md of the staged repo: the card template filled from the run's records as staged in ``dest`` (their
    published form, without local paths) and the measurements; ``variant_notes`` qualify them, under the table.
    ``license``: a Hub license id for the metadata (none written without it)."""
    metrics, data_report = read_run_record(dest / METRICS_FILE), read_run_record(dest / DATA_REPORT_FILE)
    multi_label = is_multi_label(config)
    labels = [config["id2label"][str(i)] for i in range(len(config.get("id2label", {})))]
    split = metrics.get("test_split", "test")
    splits = data_report.get("kept") or {k[4:-6]: v for k, v in metrics.items()
                                         if k.startswith("num_") and k.endswith("_clips")}
    source = data_source(run)
    dataset = dict(task_type="audio-classification", dataset_type=dataset_name or source.kind,
                   dataset_name=dataset_name or source.name, dataset_split=split)
    results = _multi_label_results if multi_label else _single_label_results
    eval_results, sections = results(dest, config, labels, metrics, split, splits, dataset)
    staged = next((v for v in variants if v["name"].startswith("PyTorch") and v["accuracy"] is not None), None)
    if not multi_label and "test_accuracy" not in metrics and staged:  # e.g. `hfspeech average`'s model
        sections["results_section"] = _staging_results(staged)
    elif staged and measured(metrics.get("test_accuracy")):
        sections["results_section"] += _scored_otherwise_note(metrics, config)
    training = _training_sections(run, dest, config, metrics, data_report, dataset_name or source.text, splits,
                                  staged=staged)
    card_data = ModelCardData(
        library_name="transformers", pipeline_tag="audio-classification", license=license,
        tags=["audio-classification", "hfspeech", config["model_type"]] + (["multi-label"] if multi_label else [])
        + (["custom_code"] if custom_code else []),
        datasets=[dataset_name] if dataset_name else None,
        metrics=["map", "roc_auc", "f1", "subset_accuracy"] if multi_label else ["accuracy", "f1"],
        base_model=training.pop("hub_base_model"), model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    rate = config.get("sampling_rate") or read_run_record(dest / "preprocessor_config.json").get("sampling_rate")
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), repo_id=repo_id, model_name=repo_id.split("/")[-1],
        multi_label=multi_label, sampling_rate=rate, num_labels=len(labels),
        trim_top_db=config.get(TRIM_CONFIG_ATTRIBUTE),  # a model trained with --trim_silence: one Limitations line
        variants_table=variants_table(variants, multi_label) + "".join(f"\n\n**Warning:** {label_text(note)}."
                                                                        for note in variant_notes),
        code_note="the model's code is in this repo, hence `trust_remote_code=True`; with hfspeech installed "
                  "and imported its own classes are used" if custom_code else "transformers' own classes, no "
                                                                              "remote code",
        remote_code_argument=", trust_remote_code=True" if custom_code else "",
        onnx_usage=onnx_usage(variants, config, repo_id, rate), pipeline_note=pipeline_note(dest, config),
        **sections, **training,
    )
    card.save(dest / "README.md")
    return card


def _training_sections(run: Path, dest: Path, config: dict, metrics: dict, data_report: dict, source_text: str,
                       splits: dict, staged: Optional[dict]) -> dict:
    """The template's text on how the model was trained and tested (`hub.card_training`), and the base model's
    Hub id for the metadata (None for a local checkpoint)."""
    hyper = read_hyperparameters(dest, run)
    hub_base = hub_base_model(run)  # a local checkpoint followed back through its own records
    base_model = described_base(hyper.get("model_name_or_path") or config.get("_name_or_path"), hub_base)
    warnings = data_report.get("warnings") or metrics.get("data_warnings") or []
    return dict(
        hub_base_model=hub_base,  # a Hub id, never a local folder
        model_description=model_description(config["model_type"], base_model, hyper),
        window_text=window_text(run, hyper, config),
        provenance="trained with hfspeech" if made_with_hfspeech(run, config) else
                   "trained outside hfspeech (its folder holds no hfspeech training record) and staged with hfspeech",
        data_section=_data_section(source_text, splits, data_report.get("num_skipped",
                                                                        metrics.get("num_skipped_files")), warnings,
                                   data_origin(run, data_report.get("sampling_rate") or config.get("sampling_rate"),
                                               list((config.get("id2label") or {}).values()))),
        hyperparameters_table=hyperparameters_table(hyper, config, markdown_table),
        test_set_note=test_set_note(metrics, data_report, warnings, hyper.get("group_column"), staged is not None,
                                    eval_manifest=bool(staged and staged.get("eval_manifest"))),
    )


def _single_label_results(dest: Path, config: dict, labels: list[str], metrics: dict, split: str,
                          splits: dict, dataset: dict) -> tuple[list, dict]:
    """The card's evaluation results and sections of a single-label model: accuracy, macro-F1, per class."""
    eval_results = [EvalResult(**dataset, metric_type=kind, metric_config=metric_config, metric_name=name,
                               metric_value=metrics[key])
                    for key, (kind, metric_config, name) in SINGLE_LABEL_RESULTS.items() if measured(metrics.get(key))]
    report = read_run_record(dest / "test_classification_report.json")
    unscored = unscored_classes_note(report, labels, split) if measured(metrics.get("test_macro_f1")) else ""
    sections = dict(
        labels_table=labels_table(labels),
        results_section=_results_section(metrics, split, splits) + unscored,
        per_class_table=per_class_table(report, labels),
        results_figure="![confusion matrix](test_confusion_matrix.png)"
        if (dest / "test_confusion_matrix.png").is_file() else "",
    )
    return eval_results, sections


def _multi_label_results(dest: Path, config: dict, labels: list[str], metrics: dict, split: str,
                         splits: dict, dataset: dict) -> tuple[list, dict]:
    """The same for a multi-label model: mAP and friends, each label's threshold, per-class AP and F1."""
    eval_results = [EvalResult(**dataset, metric_type=kind, metric_config=metric_config, metric_name=name,
                               metric_value=metrics[key])
                    for key, (kind, metric_config, name) in MULTI_LABEL_RESULTS.items()
                    if measured(metrics.get(key))]
    thresholds = config.get("label_thresholds") or {}
    label_thresholds = [thresholds.get(label, DEFAULT_THRESHOLD) for label in labels]
    report = read_run_record(dest / "test_multilabel_report.json")
    sections = dict(
        labels_table=labels_table(labels, label_thresholds),
        results_section=_multi_label_results_section(metrics, split, splits, len(labels)),
        per_class_table=multi_label_per_class_table(report, labels, splits.get(split)),
        results_figure="![per-class average precision and F1](test_per_class_ap.png)"
        if (dest / "test_per_class_ap.png").is_file() else "",
    )
    return eval_results, sections


def _data_section(source: Optional[str], splits: dict, num_skipped, warnings: list[str], origin: str = "") -> str:
    """Sizes and skipped files, what the clips were where the run knows it (`hub.card_data`: generated ones), and
    the run's warnings about its splits (a leak, a missing class), which qualify every score the card shows."""
    if not splits:
        return "Not recorded in the run folder." + origin
    sizes = ", ".join(f"{name} {n}" for name, n in splits.items())
    skipped = num_skipped if measured(num_skipped) else "not recorded"
    return (f"{source or 'The training data'}; clips per split: {sizes}; files skipped as unusable: {skipped}."
            + origin + "".join(f"\n\n**Warning:** {label_text(w)}." for w in warnings))


def _results_section(metrics: dict, split: str, splits: dict) -> str:
    """The test scores as metrics.json holds them; one it lacks (or holds as null, NaN, text) is said to be
    missing rather than shown as a number."""
    if "test_accuracy" not in metrics and "test_macro_f1" not in metrics:
        return "No test metrics in the run folder: not evaluated."
    text = (f"On the {split} split ({_clips(splits.get(split))}): accuracy {_recorded(metrics.get('test_accuracy'))}, "
            f"macro-F1 {_recorded(metrics.get('test_macro_f1'))}.")
    return text + _baseline_note(metrics)


def _baseline_note(metrics: dict) -> str:
    """The floor to read the accuracy against and the run's warning that every clip got one class (metrics.json,
    `evaluation.report.majority_class_baseline`): a card said "accuracy 0.200" alone where the run had warned
    that all 5 clips were predicted 'down' and always answering the commonest class scores 0.400."""
    majority, one_class = metrics.get("test_majority_class_accuracy"), metrics.get("test_one_class_predicted")
    text = (f" Always answering the split's commonest class would score accuracy {number(majority)} (the "
            "majority-class baseline).") if measured(majority) else ""
    return text + (f"\n\n**Warning:** {label_text(one_class)}." if isinstance(one_class, str) and one_class else "")


def _recorded(value) -> str:
    return number(value) if measured(value) else "missing from metrics.json" if value is None else \
        f"not a number in metrics.json ({value!r})"


def _clips(count) -> str:
    return f"{count} clips" if measured(count) else "number of clips not recorded"


def _scored_otherwise_note(metrics: dict, config: dict) -> str:
    """One line where the Results and the exported variants' accuracy were scored differently: a run that scored its
    test split on one centre crop per clip (before runs said how, or `test_scored_as` says so), beside variants
    that score whole clips in windows. A card showed 0.441 and 0.588 for one model on the same 34 clips, no word."""
    scored, window = metrics.get("test_scored_as"), config.get("max_length_seconds")
    if not measured(window) or not window:
        return ""
    if scored is None:  # a run from before `test_scored_as`: its test pass was the Trainer's
        how = f"one centre crop of {window:g} s per clip (the run's test pass)"
    elif isinstance(scored, str) and scored.startswith("centre crop"):
        how = f"one {scored} per clip (metrics.json `test_scored_as`)"
    else:
        return ""
    return (f"\n\n**Note:** these Results score {how}; the exported variants' accuracy below scores whole clips in "
            f"{window:g}-s windows, mean of the windows, as `hfspeech predict` and `hfspeech evaluate` do: on clips "
            f"longer than {window:g} s the two differ.")


def _staging_results(staged: dict) -> str:
    """A run without test metrics, described by what staging measured on `--eval_dir` (the PyTorch variant)."""
    return (f"No test split was evaluated in the run folder. Measured at staging on {staged['num_clips']} clips "
            f"of an evaluation {eval_kind(staged)}: accuracy {staged['accuracy']:.3f} (PyTorch fp32; each exported "
            "variant below on the same clips).")


def _multi_label_results_section(metrics: dict, split: str, splits: dict, num_labels: int) -> str:
    """The test scores; mAP says over how many labels when some had no positive in the split (they have no AP)."""
    if not any(measured(metrics.get(key)) for key in MULTI_LABEL_RESULTS):
        return "No test metrics in the run folder: not evaluated."
    m = {key[5:]: metrics.get(key) for key in metrics if key.startswith("test_")}
    auc_classes, map_classes = m.get("roc_auc_num_classes"), m.get("map_num_classes")
    auc_note = f", over the {auc_classes} classes with both outcomes in the split" if measured(auc_classes) else ""
    map_note = f", over the {map_classes} of {num_labels} labels with a positive in the split" \
        if measured(map_classes) and map_classes < num_labels else ""
    text = (f"On the {split} split ({_clips(splits.get(split))}): mAP {number(m.get('map_macro'))} "
            f"(macro{map_note}) and "
            f"{number(m.get('map_micro'))} (micro); ROC-AUC {number(m.get('roc_auc_macro'))} (macro{auc_note}). "
            f"At each label's threshold: micro-F1 {number(m.get('micro_f1'))}, macro-F1 {number(m.get('macro_f1'))}, "
            f"subset accuracy {number(m.get('subset_accuracy'))} (the share of clips whose whole label set is "
            f"exactly right).")
    prevalence = m.get("label_prevalence")
    if measured(prevalence):
        text += (f"\n\nLabel prevalence in this split is {prevalence:.3f} (the share of clip-label pairs that are "
                 f"present): that is the chance level of mAP, what scores unrelated to the audio would get on "
                 f"average, so compare mAP with it rather than with 0.")
    return text
