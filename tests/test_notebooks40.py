"""hfspeech driven from one long-lived Python process (a notebook), call after call (audit NB, mends NM, IN): a
Ctrl-C or SIGTERM that Python dropped in a finalizer still stops the training run (it trained on), the root logger
as it was after an int8 export, a relabelled metadata.csv read again with its mtime put back, and the clip-digest
memo forgotten by each evaluation and int8 gate."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import TINY_CNN, run_cli_output, write_tone_folder


def train_args(data: Path, output_dir: Path) -> list[str]:
    return ["--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn", "--config_overrides",
            TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5",
            "--seed", "0", "--save_total_limit", "1", "--report_to", "none"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("notebook") / "data", clips_per_class=4, rates=(16000,))


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    from hfspeech.training.run import main

    output_dir = tmp_path_factory.mktemp("notebook_run") / "run"
    main(train_args(tiny_data, output_dir))
    return output_dir


@pytest.fixture(scope="module")
def tiny_int8(tiny_run, tmp_path_factory) -> tuple[Path, list, int]:
    """`tiny_run`'s int8 file, and the root logger's handlers and level after the export, read before
    `bare_root_logger` puts pytest's capture handlers back."""
    from hfspeech.export import export_onnx

    with bare_root_logger() as root:
        quantized = export_onnx(tiny_run, tmp_path_factory.mktemp("notebook_onnx") / "onnx", quantize="int8")
        return quantized, list(root.handlers), root.level


class LostInAFinalizer:
    """Garbage in a cycle whose finalizer signals this process: the handler's KeyboardInterrupt (or `Terminated`),
    raised in `__del__`, is dropped by Python ("Exception ignored in: ..."), as a Ctrl-C landing in a collection is."""

    def __init__(self, signum: int, finalized: list):
        self.signum, self.finalized, self.cycle = signum, finalized, self

    def __del__(self):
        self.finalized.append(self.signum)
        os.kill(os.getpid(), self.signum)


@contextlib.contextmanager
def collections_of_the_code_alone() -> Iterator[list]:
    """Inside, garbage is freed only by the collections the code makes (accelerate's, a test's); yields what
    Python dropped there (unraisable exceptions' types): the proof that a test lost its interrupt."""
    dropped = []
    gc.disable()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
            yield dropped
    finally:
        gc.enable()


@pytest.mark.parametrize("name, code, said", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_an_interrupt_lost_as_training_starts_still_stops_the_run(tiny_data, tmp_path, capsys, name, code, said):
    """Dropped in a finalizer run by accelerate's collection as the training loop starts, the run trained to its end
    (0). It stops before its first step, with an interrupt's code and line; the caller's handler ran and is back."""
    signum, called, finalized = getattr(signal, name), [], []

    def callers_handler(number, frame):  # raises, as ipykernel's and Python's default SIGINT handlers do
        called.append(number)
        raise KeyboardInterrupt

    previous = signal.signal(signum, callers_handler)
    try:
        with collections_of_the_code_alone() as dropped:
            LostInAFinalizer(signum, finalized)  # freed by the first collection the run makes
            result = run_cli_output(["train", *train_args(tiny_data, tmp_path / "run")], capsys)
        assert signal.getsignal(signum) is callers_handler
    finally:
        signal.signal(signum, previous)
    assert finalized == [signum] and dropped and issubclass(dropped[0], KeyboardInterrupt)
    assert called == ([signum] if name == "SIGINT" else [])  # sigterm_raises' handler raised before the caller's
    assert (result[0], result[2].splitlines()[-1]) == (code, f"hfspeech train: {said}"), result[2]
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("when", ["at step 1", "after saving"])
def test_an_interrupt_lost_in_a_run_stops_it_at_the_next_step_or_as_it_ends(tiny_data, tmp_path, when):
    """Dropped in a finalizer that a collection ran at step 1 (of 2 epochs of several steps): the run stops at the
    next; after its last step and evaluation (as `train` traces its TorchScript twin): as the run ends."""
    from transformers import TrainerCallback

    from hfspeech.training.command_line import parse_args
    from hfspeech.training.run import run_training

    finalized, trainers = [], []

    def lose_an_interrupt() -> None:
        LostInAFinalizer(signal.SIGINT, finalized)
        gc.collect()

    class CollectsAtStepOne(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1 and when == "at step 1":
                lose_an_interrupt()

    def add_callback(setup) -> None:
        setup.trainer.add_callback(CollectsAtStepOne())
        trainers.append(setup.trainer)

    argv = [*train_args(tiny_data, tmp_path / "run"), "--num_train_epochs", "2", "--per_device_train_batch_size", "2"]
    with collections_of_the_code_alone() as dropped, pytest.raises(KeyboardInterrupt):
        run_training(*parse_args(argv), before_training=add_callback,
                     after_saving=lose_an_interrupt if when == "after saving" else None)
    assert finalized == [signal.SIGINT] and dropped == [KeyboardInterrupt]
    state = trainers[0].state
    assert state.global_step == 1 < state.max_steps if when == "at step 1" else state.global_step == state.max_steps
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_lost_in_a_later_fold_stops_the_cross_validation(tmp_path, capsys, monkeypatch):
    """Fold 1's metric objects (evaluate's, which reference themselves) are freed by fold 2's collections: a Ctrl-C
    dropped in their finalizers let folds 2 and 3 train on. The fold it lands in stops, and the command with it."""
    from hfspeech.training import cross_validation
    from tests.test_groups import write_manifests

    files = write_manifests(tmp_path, {"all": ["ann", "ann", "bob", "bob", "cy", "cy"]})
    folds, finalized, train_fold = [], [], cross_validation.run_training

    def fold_with_garbage_of_its_own(*args, **kwargs):
        folds.append(args[2].output_dir)
        if len(folds) == 2:  # freed by the fold's first collection (accelerate's, as its training loop starts)
            LostInAFinalizer(signal.SIGINT, finalized)
        return train_fold(*args, **kwargs)

    monkeypatch.setattr(cross_validation, "run_training", fold_with_garbage_of_its_own)
    with collections_of_the_code_alone() as dropped:
        code, _, err = run_cli_output(["cross-validate", "--train_file", files["all"], "--group_column", "speaker",
                                       "--model_type", "cnn", "--config_overrides", TINY_CNN, "--output_dir",
                                       str(tmp_path / "cv"), "--max_steps", "1", "--validation_split_percentage", "0",
                                       "--report_to", "none"], capsys)
    assert (code, len(folds), finalized, dropped, err.splitlines()[-1]) == (
        130, 2, [signal.SIGINT], [KeyboardInterrupt], "hfspeech cross-validate: interrupted"), err


def test_a_child_forked_during_training_gets_sigterms_default():
    """A forked child (a decoding or DataLoader worker) gets SIGTERM's default from `sigterm_raises` (a Python-level
    handler waits for a long C call to return): wrapped in a training command (`training.interrupts`), it stayed."""
    from hfspeech.cli.termination import sigterm_raises
    from hfspeech.training.command_line import process_state_kept

    with sigterm_raises(), process_state_kept():
        if (child := os.fork()) == 0:
            os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1)
        status = os.waitpid(child, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


class bare_root_logger:
    """The root logger of a notebook that has configured no logging: pytest's own capture handlers set aside."""

    def __enter__(self) -> logging.Logger:
        self.root = logging.getLogger()
        self.saved, self.level = list(self.root.handlers), self.root.level
        self.root.handlers.clear()
        self.root.setLevel(logging.WARNING)
        return self.root

    def __exit__(self, *exc) -> None:
        self.root.handlers[:] = self.saved
        self.root.setLevel(self.level)


def test_an_int8_export_leaves_the_root_logger_as_it_was(tiny_int8):
    """onnxruntime's quantizer calls `logging.debug(...)`, which gave the bare root a stderr handler for good: the
    user's `logging.basicConfig(level=INFO)` did nothing after, nor did an in-process train's log set-up."""
    quantized, handlers_after, level_after = tiny_int8
    assert quantized.is_file()
    assert (handlers_after, level_after) == ([], logging.WARNING)


def label_names(dataset) -> list[str]:
    feature = dataset["train"].features["label"]
    return list(feature.names) if hasattr(feature, "names") else sorted(set(dataset["train"]["label"]))


def test_a_relabelled_metadata_csv_with_its_mtime_put_back_is_read_again(tiny_data, tmp_path):
    """datasets keys an audiofolder's cache by each file's mtime alone: `high` renamed `HIGH` (same size, mtime put
    back) was still `high`, in this process and in a fresh one sharing the cache."""
    from hfspeech.data.loading import _load_audiofolder

    folder = tmp_path / "meta"
    (folder / "train").mkdir(parents=True)
    rows = []
    for clip in sorted(tiny_data.glob("*/*.wav")):
        shutil.copy(clip, folder / "train" / clip.name)
        rows.append(f"{clip.name},{clip.parent.name}\n")
    metadata = folder / "train" / "metadata.csv"
    metadata.write_text("file_name,label\n" + "".join(rows))
    cache = str(tmp_path / "cache")
    assert label_names(_load_audiofolder(str(folder), cache, None, None)) == ["high", "low", "noise"]
    stat = os.stat(metadata)
    metadata.write_text(metadata.read_text().replace(",high\n", ",HIGH\n"))
    os.utime(metadata, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(metadata).st_size == stat.st_size
    assert label_names(_load_audiofolder(str(folder), cache, None, None)) == ["HIGH", "low", "noise"]


def rewritten_with_a_training_clip(clip: Path, run: Path, data: Path) -> None:
    """`clip` rewritten in place with the bytes of a clip `run` trained on (same size), its mtime put back, on a
    file system that keeps the ctime too (FUSE mounts reporting the mtime as the ctime): the memo's key of it is
    the key an earlier call left, so the memo's entry, unless forgotten, says it holds its old bytes."""
    from hfspeech.data import clip_digests

    trained = set(json.loads((run / clip_digests.TRAINING_CLIPS_FILE).read_text())["train"])
    source = next(path for path in sorted(data.glob("*/*.wav"))
                  if hashlib.sha1(path.read_bytes()).hexdigest()[:clip_digests.DIGEST_CHARS] in trained)
    assert source.stat().st_size == clip.stat().st_size
    old = os.stat(clip)
    old_key = next(key for key in clip_digests._read_digests if os.path.realpath(key[0]) == os.path.realpath(clip))
    clip.write_bytes(source.read_bytes())
    os.utime(clip, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = os.stat(clip)
    # there the rewritten file's key is the old one; here its ctime moved: the left entry is put under its new key
    clip_digests._read_digests[(old_key[0], new.st_dev, new.st_ino, new.st_size, new.st_mtime_ns,
                                new.st_ctime_ns)] = clip_digests._read_digests[old_key]


def eval_folder(tmp_path: Path) -> Path:
    """Clips of the model's labels that it never heard (another seed)."""
    return write_tone_folder(tmp_path / "held_out", clips_per_class=2, rates=(16000,), seed=7)


def test_a_clip_rewritten_between_two_evaluations_is_read_again(tiny_data, tiny_run, tmp_path, capsys):
    """Only training forgot the memo of clip digests: a second `evaluate` in the process looked its clips up in
    the first one's entries, and a clip rewritten with a training clip was not counted as trained on."""
    held_out = eval_folder(tmp_path)
    argv = ["evaluate", "--model", str(tiny_run), "--data_dir", str(held_out), "--output_dir"]
    code, out, err = run_cli_output([*argv, str(tmp_path / "first")], capsys)
    assert code == 0, err
    assert not any("trained on" in warning for warning in json.loads(out).get("data_warnings", []))
    rewritten_with_a_training_clip(held_out / "high" / "high_000.wav", tiny_run, tiny_data)
    code, out, err = run_cli_output([*argv, str(tmp_path / "second")], capsys)
    assert code == 0, err
    assert any(warning.startswith("1 of 6 clips are clips the model was trained on")
               for warning in json.loads(out)["data_warnings"])


def test_the_int8_gate_reads_its_clips_anew(tiny_data, tiny_run, tiny_int8, tmp_path):
    """The gate's training-clips check (`int8_check.json`'s data_warnings) from the same memo, as evaluate's."""
    from hfspeech.inference.agreement import gate_int8, labelled_clips

    held_out = eval_folder(tmp_path)
    clips = labelled_clips(held_out, {"high", "low", "noise"})
    quantized = tiny_int8[0]
    _, record = gate_int8(str(tiny_run), quantized, held_out, max_drop_points=100, clips=clips)
    assert record["data_warnings"] == []
    rewritten_with_a_training_clip(held_out / "high" / "high_000.wav", tiny_run, tiny_data)
    _, record = gate_int8(str(tiny_run), quantized, held_out, max_drop_points=100, clips=clips)
    assert len(record["data_warnings"]) == 1
    assert record["data_warnings"][0].startswith("1 of 6 clips are clips the model was trained on")
