"""What a training run writes in its --output_dir, by name, and the fresh start `--overwrite_output_dir` makes.

Why the fresh start: `--overwrite_output_dir` used to write over an earlier run's files one by one and leave those
this run does not write again beside its own: the earlier run's `checkpoint-8` beside the new `checkpoint-2` (the
new run killed, the same command without the flag resumed the *earlier* run's checkpoint, with its batch size and
learning rate, trained nothing more and called the earlier model its own), its test reports of the other kind (a
multi-label run over a single-label one), and `onnx/` or `torchscript/` exported from the earlier weights, which
`hfspeech stage` then published as this run's. Now the process that saves, once the run's inputs are accepted
(`start_over`), removes every one of those names that is there.

The earlier model goes too (`training.earlier_model`: left until this run's final save, a run killed before it left
the earlier weights beside this run's records, which `stage`, `predict` and `evaluate` took as this run's), first,
before the records that mark the folder as a run's. Left alone: `runs/` (TensorBoard's logs, a folder per run and
date: the history, never read as this run's); `manifests/` (`hfspeech cross-validate` writes a fold's before the
fold's run starts); links (hfspeech writes none); every other name (the user's: notes, data, an evaluation folder);
and the whole folder where it holds no record only a run writes (`OWN_TRACE`, a checkpoint): nothing there is known to
be hfspeech's.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Mapping, Optional

from hfspeech.data.clip_digests import TRAINING_CLIPS_FILE
from hfspeech.errors import UsageError, first_few
from hfspeech.evaluation.report_names import report_file_names
from hfspeech.models.config_json import DATA_REPORT_FILE, HYPERPARAMETERS_FILE, METRICS_FILE
from hfspeech.models.fingerprint import EXPORT_ONLY_FILES
from hfspeech.models.folder_checks import CHECKPOINT_NAME
from hfspeech.output_folders import folder_named
from hfspeech.training.earlier_model import earlier_model_names, refuse_loading_it

logger = logging.getLogger("hfspeech.train")

STATE_FILE = "trainer_state.json"  # written last by Trainer._save_checkpoint: the checkpoint's completion mark
# What a run (or a cross-validation fold) leaves in its folder before its first checkpoint, or at its end.
# ".run_inputs.json.tmp": the record being written by the main process while another one checks the folder
# (`accelerate launch`: that process refused the folder, "holds other files", and the launch failed).
RUN_MARKERS = (STATE_FILE, "training_args.bin", "runs", "manifests", "streamed_skipped_files.jsonl",
               "run_inputs.json", ".run_inputs.json.tmp")  # run_inputs_file.DATA_RECORD_FILE, data.streaming's log
FINAL_SAVE = "final-save"  # `training.final_save` saves in `.final-save-partial-*` (`output_folders.locked_scratch`)

# The files of an earlier run that a fresh start removes: its records and reports (`training.run`, `hub.push`), and
# an export of its weights written into the run folder itself (`hfspeech export --output RUN`).
EARLIER_RUN_FILES = frozenset({*RUN_MARKERS, METRICS_FILE, "all_results.json", DATA_REPORT_FILE, HYPERPARAMETERS_FILE,
                               TRAINING_CLIPS_FILE, *report_file_names("test"), *EXPORT_ONLY_FILES}
                              - {"runs", "manifests"})
# What only an hfspeech run writes: a fresh start removes nothing from a folder without one of these (or a
# checkpoint), so a user's metrics.json beside another tool's `runs/` stays.
OWN_TRACE = (STATE_FILE, "training_args.bin", "run_inputs.json", TRAINING_CLIPS_FILE)  # the last: `hfspeech average`'s
# (not training_hyperparameters.json, which a staged repo holds too: review R4)
EXPORT_FOLDERS = ("onnx", "torchscript")  # `hfspeech export`'s default folders in a run (`export.staging`)
EXPORT_FILES = frozenset({*EXPORT_ONLY_FILES, "config.json", "preprocessor_config.json"})


def run_trace(name: str) -> bool:
    """Whether `name` in a folder marks it as a training run's (`checkpoints.check_output_dir`)."""
    return name in RUN_MARKERS or bool(CHECKPOINT_NAME.match(name))


def start_over(training_args, inputs: Optional[Mapping[str, Optional[str]]] = None) -> None:
    """With --overwrite_output_dir, remove the earlier run's files (the module docstring says which), its model first
    (`earlier_model`): in the process that saves, once the run's inputs are accepted (its model source, checkpoint and
    data: a typo in --data_dir cost the earlier run before anything was checked), before its own record is written
    (`run.setup_training`); one log line counts them. Not when --resume_from_checkpoint names one of the folder's
    checkpoints: the run continues that run. An input of the run (`inputs`: each path by its flag, from the caller:
    --model_name_or_path, distill's --teacher) inside a checkpoint it would remove or that is the folder itself, or a
    name that cannot be listed or removed, is a one-line `UsageError`: the first would be gone before it was loaded,
    the second pass for this run's."""
    output_dir = training_args.output_dir
    if not (training_args.overwrite_output_dir and training_args.should_save) or continues_its_run(training_args):
        return
    try:
        names = earlier_run_names(output_dir)
    except OSError as error:  # a folder this user may not read
        raise cannot_remove(output_dir, os.path.basename(error.filename or output_dir), error) from None
    refuse_removing_an_input(output_dir, names, inputs or {})
    model = earlier_model_names(output_dir) if names else []  # none in a folder with no trace of a run
    refuse_loading_it(output_dir, model, inputs or {})
    for name in filter(CHECKPOINT_NAME.match, names):  # first each completion mark: a kill leaves none to resume
        try:
            (Path(output_dir) / name / STATE_FILE).unlink(missing_ok=True)
        except OSError as error:
            raise cannot_remove(output_dir, name, error) from None
    for name in model + names:  # the model before the records: a start killed between them leaves the folder a run's
        remove(Path(output_dir) / name, output_dir)
    if names:
        its_model = f", and its model ({first_few(model, 4)})" if model else ""
        logger.info("--overwrite_output_dir: removed %d of the earlier run's files and folders from %s (%s)%s",
                    len(names), output_dir, first_few(names, 5), its_model)


def refuse_removing_an_input(output_dir: str, names: list[str], inputs: Mapping[str, Optional[str]]) -> None:
    """`--model_name_or_path RUN/checkpoint-4 --output_dir RUN --overwrite_output_dir`: the checkpoint the run starts
    from was removed before it was loaded ("no such folder"); `hfspeech distill --teacher RUN/checkpoint-4` too."""
    for flag, path in inputs.items():
        inside = path and os.path.realpath(path)
        for name in (name for name in names if inside and CHECKPOINT_NAME.match(name)):
            folder = os.path.realpath(os.path.join(output_dir, name))
            if inside == folder or inside.startswith(folder + os.sep):
                raise UsageError(folder_named(output_dir, "--output_dir", (
                    f"--overwrite_output_dir would remove the earlier run's {name}, which {flag} {path} is loaded "
                    "from; copy it elsewhere first, or give another --output_dir")))


def continues_its_run(training_args) -> bool:
    """Whether --resume_from_checkpoint names a checkpoint in --output_dir (whose run this one carries on), through
    links too (a link to RUN/checkpoint-4 elsewhere: the checkpoint was removed, then "not found")."""
    named = training_args.resume_from_checkpoint
    parent = os.path.dirname(os.path.realpath(named)) if isinstance(named, str) else None
    try:
        return parent is not None and os.path.samefile(parent, training_args.output_dir)
    except OSError:  # either missing: the checkpoint is refused as not found, or the folder is new
        return False


def earlier_run_names(output_dir: str) -> list[str]:
    """The names in `output_dir` a fresh start removes, checkpoints first (a start killed half-way leaves none of
    the earlier run's to resume from beside its records); none where the folder holds no trace of a run."""
    try:
        entries = {entry.name: entry for entry in os.scandir(output_dir)}
    except (FileNotFoundError, NotADirectoryError):
        return []
    if not any(name in OWN_TRACE or CHECKPOINT_NAME.match(name) for name in entries):
        return []  # `runs/` (TensorBoard's, any tool's) or `manifests/` alone: no proof hfspeech wrote the rest
    checkpoints = sorted((name for name, entry in entries.items() if CHECKPOINT_NAME.match(name)
                          and entry.is_dir(follow_symlinks=False)), key=lambda name: int(name.split("-")[1]))
    files = sorted(name for name, entry in entries.items() if name in EARLIER_RUN_FILES
                   and entry.is_file(follow_symlinks=False))
    exports = [name for name in EXPORT_FOLDERS if name in entries and entries[name].is_dir(follow_symlinks=False)
               and any(entry.name in EXPORT_FILES for entry in os.scandir(entries[name].path))]
    return checkpoints + files + exports


def remove(path: Path, output_dir: str) -> None:
    """A checkpoint folder whole (Trainer's); of an export folder only the files an export writes (then the folder,
    when nothing else is in it); a file. `UsageError` naming the folder and the name where removing fails."""
    try:
        if CHECKPOINT_NAME.match(path.name):
            shutil.rmtree(path)
        elif path.name in EXPORT_FOLDERS:
            for entry in path.iterdir():
                if entry.name in EXPORT_FILES and not entry.is_symlink() and entry.is_file():
                    entry.unlink()
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()
    except OSError as error:
        raise cannot_remove(output_dir, path.name, error) from None


def cannot_remove(output_dir: str, name: str, error: OSError) -> UsageError:
    problem = (f"--overwrite_output_dir cannot remove the earlier run's {name} ({error.strerror}), which would pass "
               "for this run's; remove it yourself, or give another --output_dir")
    return UsageError(folder_named(output_dir, "--output_dir", problem))
