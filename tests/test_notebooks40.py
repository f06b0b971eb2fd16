"""hfspeech driven from one long-lived Python process (a notebook), call after call (audit NB, mends NM): a run's
garbage collected as it ends (a Ctrl-C in the next call was lost in its finalizers), the root logger as it was
after an int8 export, a relabelled metadata.csv read again with its mtime put back, and the clip-digest memo
forgotten by each evaluation and int8 gate."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

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


def metric_objects() -> set[int]:
    import evaluate

    return {id(thing) for thing in gc.get_objects() if isinstance(thing, evaluate.EvaluationModule)}


def test_an_in_process_train_leaves_no_garbage_with_finalizers(tiny_data, tmp_path, capsys):
    """evaluate's metric objects, which the Trainer computes with, hold themselves (bound methods in their own
    __dict__): only the garbage collector frees them, running their `__del__`. Left for the next call's collections,
    a Ctrl-C arriving in that finalizer was dropped by Python ("Exception ignored in: EvaluationModule.__del__") and
    the next run went on. With automatic collection off, none may outlive the call."""
    gc.collect()
    before = metric_objects()
    gc.disable()
    try:
        code, _, err = run_cli_output(["train", *train_args(tiny_data, tmp_path / "run")], capsys)
    finally:
        gc.enable()
    assert code == 0, err
    assert not metric_objects() - before


def test_garbage_left_before_a_run_is_collected_before_it_starts(tiny_data, tmp_path, capsys):
    """An interrupted run's cycles are garbage only once the caller lets go of its KeyboardInterrupt (after the run
    ended): collected as the next run starts, their finalizers run before it, not in it (accelerate collects as
    training starts), where a Ctrl-C was lost (1 of 8 interrupts at 0.1 to 0.8 s after runs interrupted in turn,
    with a collection at the end alone)."""
    output_dir, finalized = tmp_path / "run", []

    class Finalized:
        def __del__(self):
            finalized.append(output_dir.exists())  # made as the run starts, before accelerate's own collections

    gc.disable()
    try:
        left = Finalized()
        left.cycle = left
        del left
        code, _, err = run_cli_output(["train", *train_args(tiny_data, output_dir)], capsys)
    finally:
        gc.enable()
    assert code == 0, err
    assert finalized == [False]


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
