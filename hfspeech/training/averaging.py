"""One model from several runs of one recipe: their weights averaged ("uniform model soup").

Runs fine-tuned from the same pretrained checkpoint with different seeds usually end in the same basin, and the
average of their weights often scores close to the average of their predictions (an ensemble) at the cost of
one model: one file to export, serve and publish (Wortsman et al. 2022, "Model soups"; ESPnet and fairseq
average checkpoints the same way). Runs trained from scratch from different seeds usually do not share a
basin: evaluate the result (`hfspeech evaluate`) before using it.

The runs must be the same model: same config (labels, sizes, window) and feature extractor, the same weight
names and shapes; anything else is a one-line error naming the run that differs and both runs' values (a folder
that is no saved model is refused by `models.folder_checks`, as everywhere else); runs that differ in more than
their seed (`training_hyperparameters.json`: epochs, learning rate ...) are averaged with a warning naming what
differs.
Floating-point weights (and BatchNorm statistics) are averaged (summed in float64: the order of the runs does
not matter) and kept in their dtype; integer buffers get their rounded mean; a multi-label model's label
thresholds are the mean of the runs'. The average carries the runs' hyperparameters (the seeds as a list, and
the number of runs), their common data report and the union of their training clips' digests
(`data.clip_digests`, which `hfspeech evaluate` checks), so the model card of a staged average says how it was
made; its metrics come from `hfspeech evaluate` or `hfspeech stage --eval_dir`.
"""

from __future__ import annotations

import json
import logging
from itertools import chain
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch

from hfspeech.data.clip_digests import TRAINING_CLIPS_FILE, merged_training_clips, read_training_clips
from hfspeech.data.samples import TRIM_CONFIG_ATTRIBUTE
from hfspeech.errors import UsageError, first_few, writing_to
from hfspeech.models import register
from hfspeech.models.scores import DEFAULT_THRESHOLD, id_ordered_labels
from hfspeech.models.config_json import DATA_REPORT_FILE, HYPERPARAMETERS_FILE, read_config_json, read_run_record
from hfspeech.models.fingerprint import saving_weights
from hfspeech.models.folder_checks import check_model_folder
from hfspeech.models.loading import WEIGHT_FILES, pretrained_errors
from hfspeech.output_folders import check_output_folder, remove_leftover_scratch
from hfspeech.output_staging import written_beside
from hfspeech.training.checkpoints import FINAL_SAVE

logger = logging.getLogger(__name__)

# config values that name where a model came from rather than what it is
PROVENANCE_KEYS = ("_name_or_path", "transformers_version")
# tuned per run on its validation clips (multi-label): averaged too, not required to agree
THRESHOLDS = "label_thresholds"
# what runs of one recipe are expected to differ in (training_hyperparameters.json)
SEED_KEYS = ("seed",)
AVERAGED_RUNS = "averaged_runs"  # in an average's training_hyperparameters.json: how many runs it averages
AVERAGE_NOT_WRITTEN = "nothing was written (the folder is as it was); make room and run again"
# An earlier average's entries that the new one replaces even where it writes none of them: its other weight
# file, records the new runs do not share, its TorchScript twin (of the earlier weights: `hfspeech average` writes
# the new one after).
AVERAGE_ENTRIES = (*WEIGHT_FILES, HYPERPARAMETERS_FILE, DATA_REPORT_FILE, TRAINING_CLIPS_FILE, "torchscript")


def average_runs(runs: Sequence[str], output_dir: str, also: Optional[Callable[[Path], object]] = None) -> Path:
    """Average the weights of `runs` (saved model folders) into a new model folder `output_dir`; `also(folder)`
    writes more into the new folder before it takes `output_dir`'s place (the CLI's TorchScript twin: written after
    the rename, it went into a folder the command's lock no longer held, the lock being on the one replaced)."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    if len(runs) < 2:
        raise UsageError("averaging needs two runs or more")
    _refuse_repeated_runs(runs)
    output = Path(output_dir)
    # a killed `train`'s final save (a whole model copy), removed as `train` and a resume there do once they hold the
    # folder (`checkpoints.output_dir_held`; the CLI holds it for this call): it stayed, or was refused as the user's
    remove_leftover_scratch(output / FINAL_SAVE)
    check_output_folder(output, flag="--output_dir", ours=_an_earlier_average(output), earlier="an earlier average")
    register()
    describe = [_description(run) for run in runs]
    for run, description in zip(runs[1:], describe[1:]):
        _same_model(runs[0], describe[0], run, description)
    records = _merged_records(runs)  # read before anything is written: a damaged one stops with one line
    with pretrained_errors(runs[0]):
        model = AutoModelForAudioClassification.from_pretrained(runs[0])
        extractor = AutoFeatureExtractor.from_pretrained(runs[0])
    model.load_state_dict(average_states(chain([model.state_dict()], (_state_of(run) for run in runs[1:]))))
    thresholds = [description["thresholds"] or {} for description in describe]
    if any(thresholds):
        model.config.label_thresholds = _mean_thresholds(thresholds, id_ordered_labels(model.config))
    # Written beside the folder and renamed in whole (`output_staging.written_beside`, as an export): written in
    # place, a full disk left a folder holding config.json alone, which the same command then refused.
    with writing_to(output, AVERAGE_NOT_WRITTEN), written_beside(output, earlier=AVERAGE_ENTRIES.__contains__) as new, \
            saving_weights(output, AVERAGE_NOT_WRITTEN, weights_in=new):
        model.save_pretrained(new)
        extractor.save_pretrained(new)
        for name, record in records.items():
            (new / name).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if also is not None:
            also(new)
    logger.info("%s: the average of %d runs (%s)", output, len(runs), ", ".join(map(str, runs)))
    return output


def _an_earlier_average(output: Path) -> Callable[[str], bool]:
    """What tells an earlier `hfspeech average`'s folder (which the same command may replace, docs/architecture.md's
    `output_folders`) from a training run's or the user's: its hyperparameters count the runs averaged."""
    def ours(name: str) -> bool:
        if name != HYPERPARAMETERS_FILE:
            return False
        try:
            return AVERAGED_RUNS in read_run_record(output / name)
        except (OSError, UsageError):  # unreadable: not known to be ours
            return False

    return ours


def _refuse_repeated_runs(runs: Sequence[str]) -> None:
    """A run named twice (`runs/a runs/a`, `runs/a ./runs/a/`) would weigh double, or make a "soup" of one model
    that its card calls the average of two runs; the same folder is recognised by its resolved path."""
    seen: dict[Path, str] = {}
    for run in runs:
        resolved = Path(run).resolve()
        if resolved in seen:
            raise UsageError(f"{run}: the same folder as {seen[resolved]}; give each run once")
        seen[resolved] = run


def average_states(states: Iterable[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts with the same names and shapes, summed one at a time (so only two are
    in memory when they are loaded lazily). The sums are float64, where a few float32 values add up exactly:
    the mean does not depend on the order the runs are given in, and a weight every run shares (a frozen
    encoder) comes back bit for bit (float32 sums moved 15% of them by a rounding step). Integer buffers
    (BatchNorm's `num_batches_tracked`) get their rounded mean, not the first run's count; bool ones the first's."""
    total, dtypes, count = {}, {}, 0
    for state in states:
        if not count:
            dtypes = {name: tensor.dtype for name, tensor in state.items()}
            total = {name: tensor.clone() if tensor.dtype == torch.bool else tensor.double()
                     for name, tensor in state.items()}
        else:
            for name, tensor in total.items():
                if tensor.dtype != torch.bool:
                    tensor += state[name].double()
        count += 1
    return {name: tensor if tensor.dtype == torch.bool else _mean_as(tensor / count, dtypes[name])
            for name, tensor in total.items()}


def _mean_as(mean: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return mean.to(dtype) if dtype.is_floating_point else mean.round().to(dtype)


def _merged_records(runs: Sequence[str]) -> dict[str, dict]:
    """What a model card says about the runs (`hub.card`), by file name: their hyperparameters, a value they
    differ in (the seed) as the list of theirs, and how many were averaged; their data report when they all
    trained on the same clips."""
    hyperparameters = [read_run_record(Path(run) / HYPERPARAMETERS_FILE) for run in runs]
    keys = list(dict.fromkeys(key for record in hyperparameters for key in record))
    merged = {key: _agreed([record.get(key) for record in hyperparameters]) for key in keys}
    _warn_if_not_only_seeds(hyperparameters, keys)
    records = {HYPERPARAMETERS_FILE: {**merged, AVERAGED_RUNS: len(runs)}}
    reports = [read_run_record(Path(run) / DATA_REPORT_FILE) for run in runs]
    clip_records = [read_training_clips(run) for run in runs]  # each run's file read once, for both uses
    if reports[0] and all(_same_report(report, reports[0]) for report in reports) and not _trained_on_other_clips(
            clip_records):
        records[DATA_REPORT_FILE] = reports[0] if all(report == reports[0] for report in reports) else {
            key: value for key, value in reports[0].items() if key != SOURCE_RATES}
    clips = merged_training_clips(clip_records)  # what `hfspeech evaluate` checks its clips against
    if clips is not None:
        records[TRAINING_CLIPS_FILE] = clips
    return records


SOURCE_RATES = "source_rates"  # `data.prepare.DataReport`'s: counted since session 44, absent from older runs'


def _same_report(report: dict, first: dict) -> bool:
    """The same data report, but for the files' rates, which a run from before hfspeech counted them lacks: its
    average with a newer run's lost the whole report (the card's "Not recorded"); kept, less the rates."""
    return ({key: value for key, value in report.items() if key != SOURCE_RATES}
            == {key: value for key, value in first.items() if key != SOURCE_RATES})


def _trained_on_other_clips(clip_records: Sequence[Optional[dict[str, set[str]]]]) -> bool:
    """Whether the runs' records of their clips (`read_training_clips`, None where a run has none) differ, with
    a warning: runs that carve their splits from one folder with different `--seed`s hold out other clips, and
    report the same counts (a data report that is not theirs in common); together they may have trained on
    every clip of that folder (3 seeds on 300 FSDD clips: all 300), so the average has no test split of its own
    there."""
    known = [record for record in clip_records if record is not None]
    if all(record == known[0] for record in known):
        return False
    heard = set().union(*(record["train"] | record["validation"] for record in known))
    logger.warning("the runs trained on different clips (%d in all between them): evaluate the average on clips "
                   "none of them trained on (`hfspeech evaluate` warns about the others)", len(heard))
    return True


def _warn_if_not_only_seeds(hyperparameters: list[dict], keys: list[str]) -> None:
    """A warning naming the settings (other than the seed) the runs differ in, with their values: the average is
    made, since the runs are the same model (checked by `_same_model`), but the soup's promise is for runs "that
    differ only in their seed" (docs/training.md); 1 epoch and 10 were averaged without a word, their card showing
    `num_train_epochs: [1.0, 10]`. Not refused: averaging other recipes of one model is a thing to evaluate."""
    values = {key: [record.get(key) for record in hyperparameters] for key in keys if key not in SEED_KEYS}
    differing = [key for key, given in values.items() if any(value != given[0] for value in given)]
    if differing:
        named = "; ".join(f"{key}: {', '.join(map(str, values[key]))}" for key in differing)
        logger.warning("the runs differ in more than their seed (%s): the average of runs that differ only in their "
                       "seed is the one that usually scores close to their ensemble; evaluate it before use", named)


def _agreed(values: list):
    """The value every run had, else the runs' values in their order."""
    return values[0] if all(value == values[0] for value in values) else values


def _mean_thresholds(thresholds: Sequence[dict[str, float]], labels: Sequence[str]) -> dict[str, float]:
    """Per-label mean of the runs' multi-label thresholds (a starting point: each was tuned on its run's
    validation clips, none on the averaged model). A run without one for a label (`--tune_thresholds False`)
    counts with the 0.5 it used, rather than being left out (or a missing label raising a KeyError)."""
    logger.warning("label thresholds: the mean of the runs' (each tuned on its own validation clips); "
                   "evaluate the averaged model before trusting them")
    return {label: sum(float(run.get(label, DEFAULT_THRESHOLD)) for run in thresholds) / len(thresholds)
            for label in labels}


def _description(run: str) -> dict:
    """What must agree between runs (the config, less provenance and thresholds, and the feature extractor's
    settings), and the run's label thresholds; a folder that is no saved model is refused first."""
    check_model_folder(run)
    config = read_config_json(run)
    extractor = json.loads((Path(run) / "preprocessor_config.json").read_text(encoding="utf-8"))
    return {"config": {k: v for k, v in config.items() if k not in (*PROVENANCE_KEYS, THRESHOLDS)},
            "extractor": extractor, "thresholds": config.get(THRESHOLDS)}


def _same_model(first_run: str, first: dict, run: str, other: dict) -> None:
    """Refused with each differing value shown, the two runs' side by side: the name alone ("differs in
    trim_silence_top_db") left the user to open both files to learn which run lacked what."""
    for part in ("config", "extractor"):
        keys = sorted(k for k in first[part].keys() | other[part].keys() if first[part].get(k) != other[part].get(k))
        if keys:
            named = first_few([f"{key}: {_shown(first[part], key)} in {first_run}, {_shown(other[part], key)} in "
                               f"{run}" for key in keys], limit=3, separator="; ")
            raise UsageError(f"{run}: not the same model as {first_run} (its {part} differs in {named}); "
                             f"only runs of one recipe average{_untrimmed_way_out(first_run, first, run, other)}")


def _shown(values: dict, key: str, limit: int = 40) -> str:
    """A config value as a one-line message shows it: JSON, cut at `limit` characters (`id2label` can be long)."""
    if key not in values:
        return "absent"
    text = json.dumps(values[key], sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _untrimmed_way_out(first_run: str, first: dict, run: str, other: dict) -> str:
    """A run trained with --trim_silence before config.json recorded it has no `trim_silence_top_db`, and nothing
    tells it from an untrimmed run: the user knows, and the way out is theirs (docs/models.md)."""
    configs = [(first_run, first["config"]), (run, other["config"])]
    lacking = [name for name, config in configs if TRIM_CONFIG_ATTRIBUTE not in config]
    if len(lacking) != 1:
        return ""
    top_db = next(config[TRIM_CONFIG_ATTRIBUTE] for _, config in configs if TRIM_CONFIG_ATTRIBUTE in config)
    return (f"; if {lacking[0]} was trained with --trim_silence by an earlier hfspeech (which did not record it), "
            f'add "{TRIM_CONFIG_ATTRIBUTE}": {json.dumps(top_db)} to its config.json (docs/models.md, "Runs from '
            'earlier versions")')


def _state_of(run: str) -> dict[str, torch.Tensor]:
    """A run's weights. Its config equals the first run's, so the names and shapes do too (weights that
    disagree with their config fail in `from_pretrained`, as a one-line error)."""
    from transformers import AutoModelForAudioClassification

    with pretrained_errors(run):
        return AutoModelForAudioClassification.from_pretrained(run).state_dict()
