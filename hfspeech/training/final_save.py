"""The run's model saved at the end of training, each file whole: written into a hidden folder inside the run
folder, then renamed into place one file at a time, the weights first and config.json last.

transformers' `Trainer.save_model` writes each file where it stays (config.json, model.safetensors,
preprocessor_config.json, training_args.bin). A `predict`, `serve` or `evaluate` started at that moment, or one
reading a resumed run's earlier model as it was replaced, read an empty config.json (a JSONDecodeError, once in
11,390 reads: audit CC) or weights cut short. Renamed in (`os.replace`: atomic on one disk), every file a reader
opens is whole, the earlier one or the new one, and one that sees the new config.json sees the new weights.

The hidden folder is `output_folders`' locked scratch folder (`.final-save-partial-*` in the run folder, made with
the umask's mode): a run killed while saving leaves one, and the next final save in that folder removes it
(`remove_leftover_scratch`), as does the next run started or resumed there, once it holds the folder
(`training.checkpoints.output_dir_held`, which keeps a second run out of it), and an `hfspeech average` into it
(`training.averaging`); a live run's is locked and kept.
Trainer's own save is kept as it is (DeepSpeed's and FSDP's gathering of the weights on every process, only the
saving process writing): only the folder it writes into is another one, the same on every process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.models.fingerprint import SHARD_PATTERNS, TRACED_FROM, folder_fingerprint, made_from, with_usual_modes
from hfspeech.models.loading import WEIGHT_FILES
from hfspeech.output_folders import locked_scratch, named_at, remove_leftover_scratch
from hfspeech.training.checkpoints import FINAL_SAVE, model_write_errors
from hfspeech.training.feature_cache import CachedHeadModel

logger = logging.getLogger("hfspeech.train")

LAST = "config.json"  # renamed in last: a reader that sees the new one finds the new weights beside it
REPLACED = ".replaced-"  # in the scratch folder: an earlier folder of the same name (DeepSpeed's), set aside


def save_model(trainer) -> None:
    """`trainer.save_model()` into the scratch folder, except that a head trained from cached features is saved with
    its base; then its files renamed into the run folder. A full disk (safetensors' weights, torch's
    training_args.bin) is one line naming the run folder, and the run's earlier model, if any, stays whole; the
    weights get a usual mode."""
    output_dir = Path(trainer.args.output_dir)
    with model_write_errors(str(output_dir)), final_save_folder(trainer) as scratch:  # training.checkpoints
        try:
            if not isinstance(trainer.model, CachedHeadModel):
                trainer.save_model(str(scratch))
            elif trainer.is_world_process_zero():
                save_head_with_base(trainer, scratch)
            if trainer.args.world_size > 1:
                trainer.accelerator.wait_for_everyone()  # every process's files written (DeepSpeed's) before they move
            if trainer.args.should_save and scratch.is_dir():
                with_usual_modes(scratch)  # safetensors writes 0600 (`models.fingerprint`)
                earlier = unrecorded_export_weights(output_dir)
                move_in(scratch, output_dir)
                warn_of_earlier_export(output_dir, earlier)
        except Exception as error:  # a message naming the file where the user will look for it
            raise named_at(error, scratch, output_dir)


def unrecorded_export_weights(output_dir: Path) -> Optional[dict]:
    """The model's fingerprint before this save, where `onnx/` holds an export without traced_from.json (an older
    hfspeech's): only then is it needed, to tell whether the save changed the weights (a rerun with nothing left to
    train saves the same ones: review R4)."""
    folder = output_dir / "onnx"
    if (folder / "model.onnx").is_file() and not (folder / TRACED_FROM).is_file():
        return folder_fingerprint(output_dir)
    return None


def warn_of_earlier_export(output_dir: Path, unrecorded: Optional[dict]) -> None:
    """An `onnx/` export left in the run folder by an earlier training of it (a resumed or continued run;
    --overwrite_output_dir removes it) runs the earlier weights. `predict` warns of one whose traced_from.json shows
    it, but one by an hfspeech older than that record answered with the old model without a word (audit UP: made by
    d97cbe6, 8 of 48 top-1 labels changed after a resumed run, exit 0). Said once, here, where the weights changed
    (`unrecorded`: the weights before this save, for such an export). (`torchscript/`, a baseline's twin, is traced
    again after this save by `hfspeech train` itself.)"""
    folder = output_dir / "onnx"
    if not (folder / "model.onnx").is_file():
        return
    if folder_fingerprint(output_dir) != unrecorded if unrecorded is not None else not made_from(folder, output_dir):
        logger.warning("warning: %s was exported from the run's earlier weights; it runs the earlier model: "
                       "`hfspeech export %s` again to run this one", folder, output_dir)


def save_head_with_base(trainer, scratch: Path) -> None:
    """A head trained from cached features (`--freeze_base_model`) saved as the whole model, with the feature
    extractor and, as `Trainer.save_model` writes beside any other run's model, this run's training_args.bin: without
    it an earlier run's stayed in the folder, describing hyperparameters this model was not trained with."""
    import torch
    from transformers.trainer import TRAINING_ARGS_NAME

    trainer.model.model.save_pretrained(scratch)
    trainer.processing_class.save_pretrained(scratch)
    torch.save(trainer.args, scratch / TRAINING_ARGS_NAME)


@contextlib.contextmanager
def final_save_folder(trainer) -> Iterator[Path]:
    """A locked `.final-save-partial-*` folder in the run folder, made by each process that saves once the ones no
    process holds (a killed run's) are removed, and removed at the end, whatever happened. The other processes
    get the main process's (Trainer's DeepSpeed save without gathered weights writes from every process)."""
    made, handle = None, None
    if trainer.args.should_save:
        destination = Path(trainer.args.output_dir) / FINAL_SAVE
        destination.parent.mkdir(parents=True, exist_ok=True)
        remove_leftover_scratch(destination)
        made, handle = locked_scratch(destination)
    try:
        shared = main_process_folder(trainer, made)  # a collective: every process takes part
        yield made or shared or Path(trainer.args.output_dir)  # (a lone process that does not save: as before)
    finally:
        try:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
        finally:
            if handle is not None:  # the lock goes last: until the folder is gone, no other run sweeps it
                os.close(handle)


def main_process_folder(trainer, made: Optional[Path]) -> Path:
    """The main process's scratch folder, on every process (one process: its own). A process that saves on another
    node (`--save_on_each_node`) keeps its own."""
    if trainer.args.world_size <= 1:
        return made
    from accelerate.utils import broadcast_object_list

    return Path(broadcast_object_list([str(made) if made is not None else None])[0])


def move_order(name: str) -> tuple[int, str]:
    """Weights (and their shards) first, their index next, the other files after them, config.json last."""
    if name == LAST:
        return 3, name
    if name in WEIGHT_FILES and name.endswith(".index.json"):
        return 1, name
    if name in WEIGHT_FILES or any(Path(name).match(pattern) for pattern in SHARD_PATTERNS):
        return 0, name
    return 2, name


def move_in(scratch: Path, output_dir: Path) -> None:
    """Each entry of `scratch` renamed into `output_dir` in `move_order`, replacing the earlier file of its name,
    the earlier config.json set aside first: a reader in between (or a run stopped there) finds no model rather than
    the new weights with the earlier labels. Then the earlier save's weights this one did not write are removed: its
    shards, as `save_pretrained` removes them when it writes in place, and a model.safetensors beside a new
    pytorch_model.bin (`--save_safetensors False`), which transformers would load with the new config (R3)."""
    names = sorted((entry.name for entry in scratch.iterdir()), key=move_order)
    if LAST in names and (output_dir / LAST).is_file():
        os.replace(output_dir / LAST, scratch / f"{REPLACED}{LAST}")
    for name in names:
        target = output_dir / name
        if (scratch / name).is_dir() and target.is_dir() and not target.is_symlink():
            os.replace(target, scratch / f"{REPLACED}{name}")  # a folder is not renamed over a folder
        os.replace(scratch / name, target)
    earlier = [path for pattern in SHARD_PATTERNS for path in output_dir.glob(pattern)]
    if any(name in WEIGHT_FILES for name in names):  # not a save that wrote no weights (a process without them)
        earlier += [output_dir / name for name in WEIGHT_FILES]
    for path in earlier:
        if path.name not in names:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
