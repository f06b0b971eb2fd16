"""What the model card says about how the model was trained and on what it was tested.

Each statement comes from the run's records, so the card cannot claim more than the run did: the epochs and
optimizer steps really trained (trainer_state.json: a `--max_steps` run stops before `--num_train_epochs`), a
frozen base model (a probe, not a fine-tune), how the data was given (an audio folder, CSV/JSONL manifests, a
Hub data set: run_inputs.json, of which only the kind is published, never a path), and whether the test
numbers are from a test set given apart from the training data, a split carved out of it, or (no test split)
the validation split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Optional

from hfspeech.data.manifests import MANIFEST_FORMATS
from hfspeech.data.speech_commands import split_method
from hfspeech.hub.card_markdown import number
from hfspeech.hub.local_paths import LOCAL_CHECKPOINT, MANIFEST_KEYS, RUN_INPUTS_FILE, is_hub_id
from hfspeech.models.config_json import HYPERPARAMETERS_FILE, INT8_CHECK_FILE, read_run_record

HYPERPARAMETERS = ("model_type", "model_name_or_path", "learning_rate", "num_train_epochs",
                   "per_device_train_batch_size", "gradient_accumulation_steps", "weight_decay", "warmup_ratio",
                   "lr_scheduler_type", "max_length_seconds", "seed")
# Recorded only when set: each changes what was trained (max_steps overrides num_train_epochs; a frozen base
# makes a probe) or how it was tested (group_column carves held-out splits of whole speakers, sessions...).
TRAINING_OPTIONS = ("max_steps", "head_learning_rate", "layerwise_lr_decay", "freeze_base_model",
                    "use_weighted_layer_sum", "group_column")
# Waveform augmentation and mixup, recorded only when switched on (noise_dir, a local path, is not published).
AUGMENTATION = ("speed_factors", "gain_db", "time_shift_seconds", "endpoint_trim_db", "vtlp_warp", "pitch_semitones",
                "reverb_prob", "noise_snr_db", "mixup_alpha")
TRAINED = ("epochs trained", "optimizer steps trained")  # from trainer_state.json, not flags
EPOCHS = ("num_train_epochs", "epochs trained")  # a float in one record, an integer in another: shown alike
NO_TEST_SPLIT_WARNING = "no test split"  # how training.run's warning starts (metrics.json data_warnings)
UNTRAINED_CLASSES_WARNING = "the train split has no clip of"  # how data.split_audit's warning of it starts
logger = logging.getLogger("hfspeech.hub")
MANIFEST_NAMES = {".csv": "CSV", ".tsv": "TSV", ".json": "JSON", ".jsonl": "JSON Lines"}


def options_set(values: dict) -> dict:
    """The `TRAINING_OPTIONS` a run set (max_steps > 0, a frozen base, any other that is not None)."""
    def is_set(name, value) -> bool:
        return value > 0 if name == "max_steps" else bool(value) if name == "freeze_base_model" else value is not None

    return {k: values[k] for k in TRAINING_OPTIONS if k in values and is_set(k, values[k])}


def shown(value) -> str:
    """A count of epochs as the card prints it: 10.0 and 10 both as `10`, whichever record they came from."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_hyperparameters(dest: Path, run: Path) -> dict:
    """training_hyperparameters.json as staged, or for a run from before hfspeech wrote it what
    trainer_state.json knows; with the epochs and steps trainer_state.json says were trained, and the group
    column run_inputs.json records."""
    hyper = dict(read_run_record(dest / HYPERPARAMETERS_FILE))
    state = read_run_record(run / "trainer_state.json")
    if not hyper:
        hyper = {"num_train_epochs": state.get("num_train_epochs"),
                 "per_device_train_batch_size": state.get("train_batch_size")}
    group_column = read_run_record(run / RUN_INPUTS_FILE).get("group_column")  # recorded there before here
    if isinstance(group_column, str) and not hyper.get("group_column"):
        hyper["group_column"] = group_column
    if isinstance(state.get("epoch"), (int, float)) and isinstance(state.get("global_step"), int):
        hyper.update(zip(TRAINED, (round(state["epoch"], 2), state["global_step"])))
    return hyper


def hyperparameters_table(hyper: dict, config: dict, table) -> str:
    """The recorded hyperparameters, the training actually done and `averaged_runs` for a model averaged from
    runs (`hfspeech average`). A run that started from a checkpoint has the checkpoint's model type (the recipe
    ignored `--model_type`; runs before that was fixed recorded its default, "cnn")."""
    if hyper.get("model_name_or_path"):
        hyper = {**hyper, "model_type": config["model_type"]}
    order = HYPERPARAMETERS[:4] + TRAINING_OPTIONS[:1] + TRAINED + HYPERPARAMETERS[4:] + TRAINING_OPTIONS[1:] \
        + AUGMENTATION + ("averaged_runs",)  # max_steps and the training done beside num_train_epochs
    rows = {k: shown(hyper[k]) if k in EPOCHS else str(hyper[k]) for k in order if hyper.get(k) is not None}
    if "num_train_epochs" in rows and "max_steps" in rows:
        rows["num_train_epochs"] += " (not used: max_steps overrides it)"
    return table(("hyperparameter", "value"), list(rows.items())) if rows else "Not recorded in the run folder."


def described_base(published: Optional[str], hub_base: Optional[str]) -> Optional[str]:
    """The base model as the card's description names it: a Hub id, or a local checkpoint by its folder name as the
    staged records publish it (`local_paths.public_checkpoint`: `probe (a local checkpoint)`, never `runs/probe`,
    which the description showed), here "local checkpoint `probe`" (the description sits in parentheses), with
    ``hub_base``, the Hub model its records lead back to (`hub_base_model`). A name that is neither (not a valid
    Hub id) is "a local checkpoint"."""
    from hfspeech.models.whisper.pretrained import hub_id_of

    if not published or not isinstance(published, str):
        return None  # a hand-edited record (5, a list) crashed hub_id_of with a TypeError: no name to give
    name = hub_id_of(published)  # `hfspeech pretrained` names -> Hub ids
    if name.endswith(LOCAL_CHECKPOINT):  # the card's description is in parentheses: "(a local checkpoint))" nested
        name = f"local checkpoint `{name[:-len(LOCAL_CHECKPOINT)]}`"
    elif not is_hub_id(name):
        name = "a local checkpoint"
    return name if not hub_base or hub_base == name else f"{name}, itself trained from {hub_base}"


def model_description(model_type: str, base_model: Optional[str], hyper: dict) -> str:
    """The model in a phrase: a frozen base with a trained head is a probe, not a fine-tune of the base."""
    if not base_model:
        return model_type
    if hyper.get("freeze_base_model"):
        return (f"{model_type}: a probe, a classification head trained on the frozen {base_model}, whose weights "
                "were not fine-tuned")
    return f"{model_type}, fine-tuned from {base_model}"


class DataSource(NamedTuple):
    """How the training data was given: `kind` for model-index's dataset type (the datasets builder that
    reads such data, or the Hub id), `name` short, `text` for the card's prose."""

    kind: str
    name: str
    text: str


def made_with_hfspeech(run: Path, config: dict) -> bool:
    """Whether `run` was trained (or averaged) by hfspeech: it holds hfspeech's own records (its hyperparameters, its
    run inputs, or the `max_length_seconds` every hfspeech model's config has, null or not). A checkpoint fine-tuned
    by transformers' scripts and staged here was carded "trained with hfspeech" (a `trainer_state.json` is any
    Trainer's)."""
    return ((run / HYPERPARAMETERS_FILE).is_file() or (run / RUN_INPUTS_FILE).is_file()
            or "max_length_seconds" in config)


def window_text(run: Path, hyper: dict, config: dict) -> str:
    """The clip length the card's Intended use names: a run's crop; a checkpoint made elsewhere, its feature
    extractor's input length (`models.inputs.extractor_window_seconds`: 30 s for an OpenAI Whisper), which it was
    carded as "about a few s, the crop length it was trained on"."""
    seconds = hyper.get("max_length_seconds") or config.get("max_length_seconds")
    if seconds:
        return f"about {shown(seconds)} s, the crop length it was trained on"
    try:
        from transformers import AutoFeatureExtractor

        from hfspeech.models.inputs import extractor_window_seconds

        seconds = extractor_window_seconds(AutoFeatureExtractor.from_pretrained(run))
    except Exception:  # no readable extractor: the card says what it can
        seconds = None
    return f"up to {seconds:g} s, its feature extractor's input length" if seconds else "a few seconds"


def data_source(run: Path) -> DataSource:
    """From run_inputs.json: the flags' kind of data only (a local path is never published)."""
    record = read_run_record(run / RUN_INPUTS_FILE)
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    manifests = {k: data[k] for k in MANIFEST_KEYS if isinstance(data.get(k), str)}
    if manifests:
        suffixes = sorted({Path(p).suffix.lower() for p in manifests.values()})
        formats = " and ".join(MANIFEST_NAMES.get(suffix, suffix) for suffix in suffixes)
        flags = ", ".join(f"--{k}" for k in manifests)
        return DataSource(MANIFEST_FORMATS.get(suffixes[0], "csv"), f"local {formats} manifests",
                          f"Local {formats} manifests ({flags})")
    if isinstance(data.get("data_dir"), str):
        return DataSource("audiofolder", "local audio folder", "A local audio folder (`<label>/*.wav`)")
    dataset = data.get("dataset_name")
    if isinstance(dataset, str) and is_hub_id(dataset):
        return DataSource(dataset, dataset, f"The Hub data set `{dataset}`")
    if isinstance(dataset, str):
        return DataSource("local", "local data set", "A local data set read with datasets")
    return DataSource("local", "local data", "The training data (how it was given is not recorded in the run "
                                             "folder)")


def test_set_note(metrics: dict, data_report: dict, warnings: list[str], group_column: Optional[str],
                  staged_measurement: bool, eval_manifest: bool = False) -> str:
    """The limitation every score shares: what the clips it was measured on are. A test set given apart from
    the training data (a --test_file, a test/ folder, a Hub split) is not a split carved from it, and numbers
    measured on the validation split (no test split) are no held-out test numbers. ``eval_manifest``: the clips
    measured at staging were a manifest's (labelled by its `label` column, not by folder names)."""
    split, found = metrics.get("test_split"), data_report.get("found")
    if split is None and not any(k.startswith("test_") for k in metrics):
        given = ("manifest given at staging (`--eval_dir`), labelled by its `label` column" if eval_manifest else
                 "folder given at staging (`--eval_dir`), labelled by their folder names")
        return (f"- The scores are on the clips of the {given}; the run had no test metrics." if staged_measurement
                else "- No scores: the run has no test metrics.")
    if split == "validation":
        optimistic = any(str(w).startswith(NO_TEST_SPLIT_WARNING) for w in warnings)
        return ("- There was no test split: the scores are on the validation split" +
                (", which also steered training (see the warning above), so they are optimistic" if optimistic
                 else "") + "; they are not held-out test numbers.")
    if not isinstance(found, dict):
        return f"- Scores are on the run's {split or 'test'} split, not on independent data."
    method = split_method([str(note) for note in data_report.get("notes") or []])
    if "test" in found and "lists" in method.split("+"):
        return ("- Scores are on the test split the data set's own lists name (testing_list.txt), held out of the "
                "training folder by those lists, not at random; they are not independent data.")
    if "test" in found:
        return ("- Scores are on a test set given apart from the training data (its own manifest, folder or "
                "split), not carved out of the training clips; they hold for data like that set, not for other "
                "recordings.")
    grouped = (f" by whole `{group_column}` groups (none is in two splits)" if group_column else
               " by whole speakers (the `<speaker>_nohash_` file names; none is in two splits)"
               if "speaker_groups" in method.split("+") else " at random")
    untrained = any(str(w).startswith(UNTRAINED_CLASSES_WARNING) for w in warnings)  # whole classes held out
    return (f"- Scores are on a split held out{grouped} from the training data above, not on independent data."
            + (" Some of the model's classes had no training clip (see the warning above): it never learned them, "
               "and every held-out clip of theirs is wrong by construction." if untrained else ""))


def variant_warnings(run: Path, clips: list[tuple[str, str]], include_onnx: bool) -> list[str]:
    """What qualifies the measured variants, warned (one line each) as staging starts and said under the card's
    table: `--eval_dir` clips the run trained on (the card said "0.328 on 61 clips" of which 54 were; `evaluate`
    and export's int8 check warn of them alike), and an int8 file kept with `--force` after failing its check
    (`int8_check.json`, staged beside it)."""
    from hfspeech.inference.agreement import heard_clips_warning

    warnings = []
    heard = heard_clips_warning(str(run), [path for path, _ in clips]) if clips else None
    if heard:
        warnings.append(f"--eval_dir: {heard}")
    check = read_run_record(run / "onnx" / INT8_CHECK_FILE) if include_onnx else {}
    if isinstance(check, dict) and check.get("passed") is False:
        warnings.append(f"the int8 model failed its accuracy check and was kept with `hfspeech export --force`: it "
                        f"{_int8_loss(check)} on {check.get('num_clips', '?')} clips; onnx/{INT8_CHECK_FILE} has the "
                        "numbers")
    for warning in warnings:
        logger.warning("warning: %s", warning)
    return warnings


def _int8_loss(check: dict) -> str:
    """What a failed int8 check lost: accuracy points, or for a multi-label model (`inference.agreement`'s
    `DecisionComparison`, no accuracy in its record: the card read "loses n/a accuracy points") its changed label
    decisions, counted against those active in either model."""
    if "changed_active_percent" in check:
        return (f"changes {number(check.get('changed_active_percent'), 2)}% of its label decisions active in either "
                f"model (more than {number(check.get('max_changed_active_percent'), 2)}% allowed)")
    return (f"loses {number(check.get('accuracy_drop_points'), 2)} accuracy points (more than "
            f"{number(check.get('max_accuracy_drop_points'), 2)} allowed)")
