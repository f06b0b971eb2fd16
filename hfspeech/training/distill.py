"""`hfspeech distill`: train a small student (BC-ResNet, CNN, LSTM, or any model) on a trained teacher's soft
targets as well as on the labels.

    hfspeech distill --teacher runs/whisper-ft --student_model_type bcresnet --train_file train.csv ... \
        --distill_temperature 2 --distill_weight 0.5

Every flag of `hfspeech train` works here too (augmentation, mixup, schedules, `--group_column`). By default the
teacher's logits for the un-augmented training clips are computed once and cached (`training.teacher_cache`);
each augmented crop of a clip is then taught with its clip's logits. With `--teacher_on_augmented` the teacher
runs on every training batch instead, on the augmented and mixed clips the student sees (function matching,
`training.live_teacher`): slower, but the targets then carry what the teacher knows about each distorted clip.
A multi-label teacher distils with sigmoid targets (`training.soft_targets`).

The training stack (`training.run`, the teachers, datasets: seconds) is imported where a run uses it, not at the
top: `hfspeech distill --help` and a mistyped flag wait only for the flags, as `hfspeech train`'s do.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from transformers import HfArgumentParser

from hfspeech.data.samples import TRIM_CONFIG_ATTRIBUTE
from hfspeech.errors import UsageError
from hfspeech.models.config_json import read_config_json
from hfspeech.training.command_line import exit_with_help_if_asked, parse_args, recipe_parser, refuse_mistyped_flags
from hfspeech.training.flag_files import expand_args_files
from hfspeech.training.soft_targets import Distillation

if TYPE_CHECKING:
    from hfspeech.training.run import TrainingSetup

logger = logging.getLogger("hfspeech.distill")
STREAMING_REFUSED = "distillation caches the teacher's logits per training clip; it does not work with --streaming"


@dataclass
class DistillationArguments:
    teacher: Optional[str] = field(default=None, metadata={"help": "Folder of the trained teacher (any saved "
                                                           "audio classifier with the same labels)."})
    distill_temperature: float = field(default=2.0, metadata={"help": "Softmax temperature of both models' "
                                                                      "logits in the soft loss."})
    distill_weight: float = field(default=0.5, metadata={"help": "Share of the soft (teacher) loss; the rest is "
                                                                 "the loss against the labels. 1.0: teacher only."})
    teacher_cache_dir: Optional[str] = field(default=None, metadata={
        "help": "Where teacher logits are cached (default $XDG_CACHE_HOME/hfspeech/teacher_logits, else "
                "~/.cache/hfspeech/teacher_logits)."})
    teacher_batch_size: int = field(default=32, metadata={"help": "Clips per teacher forward pass."})
    teacher_on_augmented: bool = field(default=False, metadata={
        "help": "Run the teacher on every training batch, on the augmented (and mixed) clips the student sees, "
                "instead of caching its logits of the clean clips (function matching, Beyer et al. 2022)."})

    def __post_init__(self):
        if not self.teacher:
            raise UsageError("hfspeech distill needs --teacher MODEL_FOLDER")
        if not self.distill_temperature > 0:
            raise UsageError(f"--distill_temperature must be > 0, got {self.distill_temperature}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise UsageError(f"--distill_weight must be in [0, 1], got {self.distill_weight}")
        # Both were tracebacks after the data was prepared (a batch of 0 or less; a cache path that is a file).
        if self.teacher_batch_size < 1:
            raise UsageError(f"--teacher_batch_size must be at least 1, got {self.teacher_batch_size}")
        if not launched_run():  # several processes: each machine's path once they have joined (`attach_teacher`)
            check_cache_dir(self.teacher_cache_dir)


def check_cache_dir(cache_dir: Optional[str]) -> None:
    """A --teacher_cache_dir that is a file was a traceback after the data was prepared."""
    if cache_dir and os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise UsageError(f"--teacher_cache_dir {cache_dir}: not a folder")


def student_as_model_type(arg: str, options) -> str:
    """`--student_model_type X` is `--model_type X` in every spelling a flag has: `=X`, dashes, an abbreviation
    no other flag of `options` shares (`--student`). Only the exact word was rewritten, so the others were
    refused in transformers' words after the flag check had let them through."""
    flag, equals, value = arg.partition("=")
    key = flag[2:].replace("-", "_") if flag.startswith("--") else ""
    names = {option[2:].replace("-", "_") for option in options if option.startswith("--")}
    if key and [name for name in names if name.startswith(key)] == ["student_model_type"]:
        return "--model_type" + equals + value
    return arg


def parse_distill_args(argv: Sequence[str], prog: Optional[str] = None):
    """(DistillationArguments, ModelArguments, DataArguments, TrainingArguments); `--student_model_type X` is
    `--model_type X`. A mistyped flag is named first (before "needs --teacher"); `prog`: the command its help and
    its mistakes name (`hfspeech distill`)."""
    help_parser = recipe_parser(DistillationArguments, prog=prog)
    help_parser.add_argument("--student_model_type", default=argparse.SUPPRESS, metavar="MODEL_TYPE",
                             help="the student's architecture (the recipe's --model_type, which it replaces; "
                             "--model_name_or_path starts from a pretrained student instead; default: cnn)")
    exit_with_help_if_asked(argv, help_parser)
    # the files' flags too (`--args_file` holding --teacher or --student_model_type): expanded before they are read
    argv = [student_as_model_type(arg, help_parser._option_string_actions)
            for arg in expand_args_files(argv, help_parser)]
    refuse_mistyped_flags(help_parser, argv)
    try:
        distill_args, rest = HfArgumentParser(DistillationArguments).parse_args_into_dataclasses(
            args=list(argv), return_remaining_strings=True)
    except ValueError as error:
        raise UsageError(f"invalid distillation flags: {error}") from error
    if not launched_run():  # before the data is prepared: a data folder or a typo is named now, not after decoding
        from hfspeech.training.live_teacher import check_teacher_folder

        check_teacher_folder(distill_args.teacher)
    model_args, data_args, training_args = parse_args(rest, help_parser._option_string_actions, help_parser.prog)
    if data_args.streaming:  # refused before anything is read or removed (--overwrite_output_dir: review R2)
        raise UsageError(STREAMING_REFUSED)
    if not launched_run():  # several processes: each machine's copy once they have joined (`run.load_data`)
        from hfspeech.training.live_teacher import check_teacher_fits

        check_teacher_fits(distill_args.teacher, model_args.multi_label)
        warn_if_trimmed_otherwise(distill_args.teacher, data_args)
    check_frozen_student(model_args)
    # A teacher trained by the recipe looks like a run to resume: the student was written over it. One in a checkpoint
    # that --overwrite_output_dir removes is refused as --model_name_or_path's is (`run_folder.start_over` gets both).
    if os.path.realpath(training_args.output_dir) == os.path.realpath(distill_args.teacher):
        raise UsageError(f"--output_dir {training_args.output_dir}: the teacher's own folder; the student would "
                         "be written over it: give the student a folder of its own")
    return distill_args, model_args, data_args, training_args


def launched_run() -> bool:
    """Whether this process is one of several (`accelerate launch`, torchrun): the teacher folder is then each
    machine's own, checked once the processes have joined (`live_teacher.check_teacher_labels`, `attach_teacher`,
    through `agreed`); checked as the flags were read, a machine without it stopped alone, before the processes
    joined, and the others waited minutes in gloo's set-up and died of DistNetworkError."""
    return int(os.environ.get("WORLD_SIZE") or 1) > 1


def check_frozen_student(model_args) -> None:
    """A head trained from cached frozen features has no audio left for the teacher (a traceback after encoding)."""
    if model_args.freeze_base_model and model_args.cache_frozen_features:
        raise UsageError("--freeze_base_model trains the head from features cached once per clip, but the teacher "
                         "needs each training clip's audio: pass --cache_frozen_features False to distil into a "
                         "frozen base")


def warn_if_trimmed_otherwise(teacher: str, data_args) -> None:
    """One line when the teacher was trained on clips trimmed of silence (its config's `trim_silence_top_db`) and
    this run decodes them otherwise: the teacher's targets are computed on the student's clips, which it never
    heard that way (a trimmed teacher scored 0.230 untrimmed where it scored 0.857 trimmed, on a user's takes)."""
    taught = read_config_json(teacher).get(TRIM_CONFIG_ATTRIBUTE)
    given = data_args.trimmed_at()
    if taught is not None and (given is None or float(given) != float(taught)):
        logger.warning("--teacher %s was trained on clips trimmed of silence (--trim_top_db %g), and this run "
                       "decodes them %s: its targets are for clips it never heard so; pass --trim_silence "
                       "--trim_top_db %g", teacher, taught, "untrimmed" if given is None else f"trimmed at {given:g}",
                       taught)


def attach_teacher(setup: TrainingSetup, distill_args: DistillationArguments, data_args=None) -> None:
    """Give the set-up trainer the teacher's cached logits and switch its loss to distillation. Each step that reads
    the teacher's files is `agreed`: a machine whose copy is broken stops every process with its line. `data_args`:
    the run's, for the warning about a teacher trained on clips trimmed otherwise (a launched run's, said here)."""
    from hfspeech.training.distributed import agreed
    from hfspeech.training.live_teacher import LiveTeacher, RawWaveformCollator, RawWaveformSplit
    from hfspeech.training.teacher_cache import TeacherLogitCollator, TeacherLogitSplit, teacher_logits

    if setup.streamed is not None:  # (refused as the flags are read: `parse_distill_args`)
        raise UsageError(STREAMING_REFUSED)
    trainer, train_view, teacher_dir = setup.trainer, setup.views["train"], distill_args.teacher
    if launched_run():  # not read as the flags were: each machine's copy (`launched_run`; its kind: `run.load_data`)
        agreed(lambda: check_cache_dir(distill_args.teacher_cache_dir))
        if data_args is not None:
            warn_if_trimmed_otherwise(teacher_dir, data_args)
    agreed(lambda: warn_if_teacher_heard(setup, teacher_dir))
    sampling_rate = int(trainer.processing_class.sampling_rate)  # the rate the clips were decoded at
    distillation = Distillation(distill_args.distill_temperature, distill_args.distill_weight)
    if distill_args.teacher_on_augmented:
        teacher = agreed(lambda: LiveTeacher(teacher_dir, setup.label_names, sampling_rate))
        trainer.train_dataset = RawWaveformSplit(train_view)
        trainer.data_collator = RawWaveformCollator(trainer.data_collator)
        trainer.enable_distillation(distillation, live_teacher=teacher)
        return

    def cached_logits():
        """One process runs the teacher and writes the cache; the others then read it (each ran it and wrote the same
        folder: a race). Agreed: a machine whose teacher does not load stops every process with its line."""
        with trainer.args.main_process_first(desc="teacher logits"):
            return teacher_logits(teacher_dir, train_view.split, sampling_rate, setup.label_names,
                                  distill_args.teacher_cache_dir, distill_args.teacher_batch_size,
                                  device=trainer.args.device, progress=not trainer.args.disable_tqdm)  # --use_cpu: CPU
    trainer.train_dataset = TeacherLogitSplit(train_view, agreed(cached_logits))
    trainer.data_collator = TeacherLogitCollator(trainer.data_collator)
    trainer.enable_distillation(distillation)


def warn_if_teacher_heard(setup: TrainingSetup, teacher: str) -> None:
    """A teacher trained on the student's test clips passes what it learnt from them on through its soft
    targets, and the student's test score then flatters (a leave-one-speaker-out fold distilled from a teacher
    trained on every speaker). Checked against the teacher's `training_clips.json` (`data.clip_digests`),
    warned and kept in the run's `data_warnings`, as a split leak is. Not the validation split: a teacher
    trained on the same manifest and seed has the student's validation clips as its own."""
    from datasets import Dataset

    from hfspeech.data.clip_digests import TRAINING_CLIPS_FILE, heard_clips, read_training_clips
    from hfspeech.data.columns import column_values

    record = read_training_clips(teacher)
    split = getattr(setup.views.get("test"), "split", None)
    if record is None or split is None or "path" not in split.column_names:
        logger.info("--teacher %s: whether it was trained on the student's test clips is not checked (no %s, "
                    "or no test split with files)", teacher, TRAINING_CLIPS_FILE)
        return
    paths = column_values(split, "path")  # the prepared split holds decoded audio: its clips are digested from their files
    heard = heard_clips(record, Dataset.from_dict({"audio": paths}))
    if heard:
        warning = (f"--teacher {os.path.basename(os.path.normpath(teacher))}: trained on {heard[0]} of the "
                   f"{len(paths)} test clips ({heard[1]}): the student's test scores carry what the teacher learnt "
                   "from them")
        logger.warning("data: %s", warning)
        setup.report.warnings.append(warning)


def run_distillation(distill_args: DistillationArguments, model_args, data_args, training_args,
                     after_saving=None) -> dict:
    from hfspeech.training.run import run_training

    return run_training(model_args, data_args, training_args, before_training=lambda setup: attach_teacher(
        setup, distill_args, data_args), after_saving=after_saving, teacher=distill_args.teacher)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    import sys

    from hfspeech.training.command_line import process_state_kept

    with process_state_kept():  # the parse's ACCELERATE_* variables too, as `run.main`
        return run_distillation(*parse_distill_args(list(sys.argv[1:] if argv is None else argv)))
