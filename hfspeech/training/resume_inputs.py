"""Is the checkpoint a run resumes from one of *this* run's? Refused in one line (`CheckpointError`) when not.

A run resumes from the last checkpoint of `--output_dir` by default, so a rerun with other inputs into the same
folder resumed silently: a `load_state_dict` traceback (another architecture or size), or -- worse -- the old class
ids mapped onto the new labels where the shapes agree. So the checkpoint's `config.json` (model type, sizes,
`id2label`, crop length) is compared with the model this run has just built, and its run folder's `run_inputs.json`
(data, seeds, splits, pretrained start; read and written by `run_inputs_file`) with this run's. Epochs, steps, batch
size, logging and saving may change (the schedule's new length is warned, another shape refused: `lr_schedule`),
and a new `--learning_rate` is said not to be used (`note_learning_rate`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
from pathlib import Path
from typing import Optional

from hfspeech.data.samples import TRIM_CONFIG_ATTRIBUTE
from hfspeech.errors import first_few
from hfspeech.models.problem_types import SINGLE_LABEL
from hfspeech.training.checkpoints import CheckpointError
from hfspeech.training.data_listings import path_listing
from hfspeech.training.lr_schedule import check_same_schedule
from hfspeech.training.run_inputs_file import DATA_RECORD_FILE, not_a_record, record_path, saved_record, write_record

logger = logging.getLogger("hfspeech.train")

IGNORED_KEYS = frozenset({"transformers_version", "dtype", "torch_dtype", "_name_or_path", "label_thresholds",
                          "architectures"})  # written by save_pretrained, or after training: not what weights mean


def config_differences(saved: dict, built: dict) -> list[str]:
    """`key: old -> new` for each config value that differs; labels first, with their order."""
    old_labels = [saved.get("id2label", {})[k] for k in sorted(saved.get("id2label", {}), key=int)]
    new_labels = [built.get("id2label", {})[k] for k in sorted(built.get("id2label", {}), key=int)]
    differences = [f"labels {old_labels} -> {new_labels}"] if old_labels != new_labels else []
    if built.get("problem_type") is None and saved.get("problem_type") in (None, "regression"):  # left to the
        built = {**built, "problem_type": saved.get("problem_type")}  # first step: a 1-label run's is regression
    if saved.get("problem_type") is None and built["problem_type"] == SINGLE_LABEL:  # a run that recorded null
        saved = {**saved, "problem_type": SINGLE_LABEL}  # (before session 31; a rerun that took no step)
    for key in sorted((set(saved) | set(built)) - IGNORED_KEYS - {"id2label", "label2id", "num_labels"}):
        if key == TRIM_CONFIG_ATTRIBUTE and key not in saved:  # absent: untrimmed, or from before it was
            continue  # recorded; a trim changed on resume is refused by `check_same_data` (run_inputs.json)
        if saved.get(key) != built.get(key):
            differences.append(f"{key} {saved.get(key)!r} -> {built.get(key)!r}")
    return differences


def check_checkpoint_matches(checkpoint: Optional[str], config, named: bool) -> None:
    """Refuse to resume from `checkpoint` when its config.json differs from `config`, this run's model config.
    `named`: the checkpoint came from `--resume_from_checkpoint` (the way out differs)."""
    path = os.path.join(checkpoint, "config.json") if checkpoint else None
    if path is None or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if saved.get("model_type") != config.model_type:
        differences = [f"model_type {saved.get('model_type')!r} -> {config.model_type!r}"]
    else:  # both in full, defaults filled in: config.json holds only the values that differ from them
        full = json.loads(type(config).from_dict(saved).to_json_string(use_diff=False))
        differences = config_differences(full, json.loads(config.to_json_string(use_diff=False)))
    if not differences:
        return
    raise CheckpointError(f"{checkpoint}: cannot resume, this run's model differs from the checkpoint's "
                          f"({first_few(differences, separator='; ')}); {way_out(named)}")


def way_out(named) -> str:
    """A checkpoint named with --resume_from_checkpoint is the user's choice; the output folder's is the default."""
    return ("name a checkpoint of this run or drop --resume_from_checkpoint" if named else
            "pass --overwrite_output_dir to start over, or use a new --output_dir")


def note_learning_rate(checkpoint: Optional[str], training_args) -> None:
    """A changed --learning_rate is not used on resume: the restored optimizer and scheduler keep the checkpoint's
    base rates. Said in a log line, and where the checkpoint has one rate it replaces the flag's value, so that
    training_hyperparameters.json and the model card record the rate the run trained with."""
    path = os.path.join(checkpoint, "scheduler.pt") if checkpoint else None
    if path is None or not os.path.isfile(path):
        return
    import torch
    try:
        base_lrs = torch.load(path, map_location="cpu", weights_only=True).get("base_lrs") or []
    except Exception:  # an unreadable file is named by checkpoints.resume_errors when Trainer loads it
        return
    learning_rate = training_args.learning_rate
    if base_lrs and not any(math.isclose(rate, learning_rate, rel_tol=1e-6) for rate in base_lrs):
        logger.warning("--learning_rate %g is not used when resuming: the optimizer and scheduler restored from "
                       "%s keep its rate %g (pass --overwrite_output_dir to start over with the new one)",
                       learning_rate, checkpoint, max(base_lrs))
        if len(set(base_lrs)) == 1:
            training_args.learning_rate = base_lrs[0]


def check_resume_inputs(checkpoint: Optional[str], config, training_args) -> None:
    """The checks, once the model is built (labels known) and before features are cached or a step taken."""
    check_checkpoint_matches(checkpoint, config, named=bool(training_args.resume_from_checkpoint))
    note_learning_rate(checkpoint, training_args)


def check_schedule(checkpoint: Optional[str], training_args) -> None:
    """`lr_schedule.check_same_schedule`, before the data is read (`run.model_inputs`): it needs only the flags."""
    check_same_schedule(checkpoint, training_args, way_out(bool(training_args.resume_from_checkpoint)))


NEWER_KEYS = ("trim_top_db", "data_seed")  # recorded since sessions 30, 44: an older record is not checked on them
SPLIT_METHOD_KEY = "split_method"  # since session 32: `data.speech_commands.split_method`
NEW_SPLIT_METHODS = frozenset({"lists", "speaker_groups"})  # ways earlier versions never split: absent = random
LISTINGS_KEY = "data_listings"  # since session 32: {source flag: `path_listing`}, what tells moved data is the same


def _absolute(value):
    return os.path.abspath(value) if isinstance(value, str) and os.path.exists(value) else value


def listed_paths(record: dict) -> dict:
    """{data flag: absolute path} of the record's local data paths: those a listing describes."""
    return {key: value for key, value in record["data"].items()
            if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value)}


def with_listings(record: dict, known: Optional[dict] = None) -> dict:
    """`record` with a listing of each of its local data paths: `known`'s where given (computed by the check, or
    the resumed run's for the same path), the others computed now. A walk of the whole folder (about 1 s per 100k
    files), so only the process that writes the record makes it, and the check only for a path that moved."""
    known = known or {}
    listings = {key: known[key] if key in known else path_listing(value) for key, value in listed_paths(record).items()}
    return {**record, LISTINGS_KEY: {key: listing for key, listing in listings.items() if listing is not None}}


def data_record(model_name_or_path: Optional[str], data_args, seed: int, listings: bool = True,
                data_seed: Optional[int] = None) -> dict:
    """What decides which clips a run trains and is tested on, and in which order: the source (local paths made
    absolute), how missing splits are carved (the seed among it), the batches' draws (`--data_seed`, where given,
    replaces the seed in them: another one resumed into a run trains the rest of its epochs in another order), and
    the pretrained start, which config.json does not record. `listings`: with each local path's `path_listing`
    (costly; `check_same_data` makes only those it needs)."""
    source = {key: _absolute(value) for key, value in data_args.source().items()}
    record = {"model_name_or_path": _absolute(model_name_or_path), "data": source, "seed": seed,
              "data_seed": data_seed, "validation_split_percentage": data_args.validation_split_percentage,
              "test_split_percentage": data_args.test_split_percentage, "group_column": data_args.group_column,
              "max_train_samples": data_args.max_train_samples, "trim_top_db": data_args.trimmed_at()}
    return with_listings(record) if listings else record


def moved_with_same_files(key: str, saved: dict, record: dict) -> bool:
    """Whether the data flag `key` names another path than the saved run's, holding the same files (a run and its
    data copied elsewhere together): the listings of both agree, this run's made here (only for a moved path). An
    older record has none: not the same (`refuse_unlisted_move` says why)."""
    listing = saved_listings(saved).get(key)
    if listing is None or not isinstance(record["data"].get(key), str):
        return False
    record.setdefault(LISTINGS_KEY, {})[key] = path_listing(record["data"][key])
    return listing == record[LISTINGS_KEY][key]


def saved_listings(saved: dict) -> dict:
    """The saved record's listings by data flag, those that list something: none where it has none (an earlier
    hfspeech's), or they are no object (a hand edit: `[]`, whose `.get` was a traceback), or empty ones."""
    listings = saved.get(LISTINGS_KEY)
    return {key: listing for key, listing in listings.items() if listing} if isinstance(listings, dict) else {}


def own_data_seed(training_args, data_args) -> Optional[int]:
    """`--data_seed` where it changes the batches' draws: not where it is the seed (the draws' default) or the run
    streams (its shuffle follows --seed alone), where another one resumed changes nothing and was refused
    (review R1)."""
    data_seed = getattr(training_args, "data_seed", None)
    return None if data_seed == training_args.seed or getattr(data_args, "streaming", False) else data_seed


def as_given(value) -> str:
    """A recorded flag's value as a refusal names it: `not given` for none (it read `data_seed 3 -> None`, Python's
    word, where the resumed command left the flag out)."""
    return "not given" if value is None else repr(value)


def check_same_data(checkpoint: Optional[str], model_args, data_args, training_args) -> dict:
    """Refuse a checkpoint whose run folder records other data (cheap: before any data is read); returns this run's
    record for `record_data`. No record (an older run), or one without a newer key, is not checked on it: warned."""
    record = data_record(model_args.model_name_or_path, data_args, training_args.seed, listings=False,
                         data_seed=own_data_seed(training_args, data_args))
    record = json.loads(json.dumps(record))  # as it is read back: lists, str keys
    saved = saved_record(checkpoint)
    if saved is not None and not isinstance(saved.get("data"), dict):  # every version recorded its data flags
        raise not_a_record(record_path(checkpoint), saved)
    if saved is not None:
        flat_saved, flat_new = {**saved.get("data", {}), **saved}, {**record["data"], **record}
        differing = [key for key in sorted(flat_new) if key not in ("data", LISTINGS_KEY) and flat_saved.get(key)
                     != flat_new.get(key) and (key in flat_saved or key not in NEWER_KEYS)]
        for key in [key for key in differing if moved_with_same_files(key, saved, record)]:
            differing.remove(key)
            logger.info("%s moved from %s to %s, same files (names and sizes): resuming", key, flat_saved[key],
                        flat_new[key])
        refuse_unlisted_move(checkpoint, saved, record, differing, training_args.resume_from_checkpoint)
        differences = [f"{key} {as_given(flat_saved.get(key))} -> {as_given(flat_new.get(key))}" for key in differing]
        if differences:  # the first three, and how many more (the rest were left out without a word)
            listed = first_few(differences, 3, "; ")
            raise CheckpointError(f"{checkpoint}: cannot resume, its run had other data or start ({listed}); "
                                  f"{way_out(training_args.resume_from_checkpoint)}")
        _warn_unchecked(checkpoint, [key for key in NEWER_KEYS if key not in flat_saved])
        same = {key: listing for key, listing in saved_listings(saved).items()
                if key in record["data"] and flat_saved.get(key) == record["data"][key]}  # the same path: kept
        record[LISTINGS_KEY] = {**same, **record.get(LISTINGS_KEY, {})}
    elif checkpoint:
        _warn_unchecked(checkpoint, [DATA_RECORD_FILE])
    return record


def refuse_unlisted_move(checkpoint: str, saved: dict, record: dict, differing: list[str], named) -> None:
    """Data that only lies elsewhere now, of which the run's record lists none of the files: nothing tells they are
    the same, so refused, saying so and how to resume, not as if the data were other (upgrade audit). An earlier
    hfspeech's run (no `data_listings`: before 93d5b3b), or one whose listing of that path is empty or missing
    (`path_listing` found nothing to list when it was recorded; a hand edit); a path whose listing differs is other
    data. `named`: the checkpoint came from --resume_from_checkpoint; the way to start over drops it."""
    old = {key: saved["data"].get(key) for key in differing}
    if not old or set(old) & set(saved_listings(saved)) or set(old) - set(listed_paths(record)) or not all(
            isinstance(path, str) and os.path.isabs(path) for path in old.values()):
        return
    flags = " ".join(f"--{key} {shlex.quote(path)}" for key, path in old.items())
    links = "; ".join(link_command(record["data"][key], path) for key, path in old.items() if not os.path.exists(path))
    how = f"link the old path to the new one (`{links}`) and pass `{flags}`" if links else f"pass `{flags}`"
    unlisted = ("was made by an earlier hfspeech, which recorded no listing of its files" if LISTINGS_KEY not in saved
                else f"recorded no listing of the files at {' and '.join(old.values())} ({DATA_RECORD_FILE} has none)")
    start_over = ("drop --resume_from_checkpoint to start over (with --overwrite_output_dir, or a new --output_dir)"
                  if named else way_out(named))
    raise CheckpointError(f"{checkpoint}: cannot resume, its run {unlisted}, so data at another path cannot be checked "
                          f"as the same; {how}, or {start_over}")


def link_command(new: str, old: str) -> str:
    """`ln -s` that makes `old` lead to `new`, from the highest folder of `old` that is gone (a manifest in a moved
    folder: `ln -s corpus2 corpus`; a link to the file itself failed, its folder gone), `mkdir -p` first where even
    that folder's parent is gone (a tree moved to another machine); a link left broken is pointed at `new`."""
    if os.path.islink(old):  # a link whose target is gone: pointed at the new place
        return f"ln -sfn {shlex.quote(new)} {shlex.quote(old)}"
    new_path, old_path = Path(new), Path(old)
    while new_path.name == old_path.name and not old_path.parent.exists() and old_path.parent != old_path.parent.parent:
        new_path, old_path = new_path.parent, old_path.parent
    make = "" if old_path.parent.exists() else f"mkdir -p {shlex.quote(str(old_path.parent))} && "
    return f"{make}ln -s {shlex.quote(str(new_path))} {shlex.quote(str(old_path))}"


def check_split_method(checkpoint: Optional[str], method: str, named) -> None:
    """Refuse to resume a run whose held-out splits were made another way (`data.speech_commands.split_method`):
    the same seed then holds out other clips, and the resumed run trains on its validation and test clips. A record
    without one is from before Speech Commands' lists and speaker carve (random): a difference where they decide."""
    saved = saved_record(checkpoint)
    recorded = None if saved is None else saved.get(SPLIT_METHOD_KEY)
    if saved is None or recorded == method or (recorded is None and not set(method.split("+")) & NEW_SPLIT_METHODS):
        return
    was = "'random' (not recorded: an earlier version's run)" if recorded is None else repr(recorded)  # not None
    raise CheckpointError(f"{checkpoint}: cannot resume, its run split the data another way ({SPLIT_METHOD_KEY} "
                          f"{was} -> {method!r}: other clips held out); {way_out(named)}")


def _warn_unchecked(checkpoint: str, missing: list[str]) -> None:
    """A checkpoint of an earlier version's run lacks (part of) the record a resume is checked on: said, not
    silent (an upgrade audit resumed one with other data, and one without --trim_silence: 0.833 -> 0.625)."""
    if missing:
        logger.warning("%s: its run recorded no %s (an earlier hfspeech version's run), so this resume is not checked "
                       "against it: resume only with the data and flags it was trained with, or pass "
                       "--overwrite_output_dir (docs/models.md, \"Runs from earlier versions\")", checkpoint,
                       " or ".join(missing))


def record_data(record: dict, training_args, split_method: str, checkpoint: Optional[str] = None) -> None:
    """`check_same_data`'s record, with how the held-out splits were made (`check_split_method`, refused first where
    it differs from the resumed run's) and the listings, written by the saving process once the data has loaded (a run
    stopped by its data had left a run_inputs.json that `evaluate --output_dir` refused as another run's files)."""
    check_split_method(checkpoint, split_method, training_args.resume_from_checkpoint)
    if training_args.should_save:
        write_record(training_args.output_dir, with_listings({**record, SPLIT_METHOD_KEY: split_method},
                                                              record.get(LISTINGS_KEY)))

