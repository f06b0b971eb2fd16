"""Runs that were copied, moved or made read-only: resuming them, reading them as another user, writing beside them
(the session-32 audit of moved run folders)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import TINY_CNN, write_tone_folder


def train(data: Path, output_dir: Path, *extra: str) -> None:
    from hfspeech.training.run import main

    main(["--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn", "--config_overrides",
          TINY_CNN, "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5",
          "--seed", "0", "--disable_tqdm", "true", "--report_to", "none", *extra])


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("tones"), clips_per_class=6, rates=(8000,))


@pytest.fixture(scope="module")
def two_epoch_run(tones, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("first") / "run"
    train(tones, run)
    return run


def checkpoints(run: Path) -> list[str]:
    return sorted((path.name for path in run.glob("checkpoint-*")), key=lambda name: int(name.split("-")[1]))


def same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return first.keys() == second.keys() and all((first[name] == second[name]).all() for name in first)


def test_a_copied_checkpoint_resumes_with_its_own_best_not_what_the_old_path_holds_now(tones, two_epoch_run, tmp_path):
    old, copy = tmp_path / "old", tmp_path / "copy"
    shutil.copytree(two_epoch_run, old)
    shutil.copytree(two_epoch_run, copy)
    first, last = checkpoints(copy)
    state = json.loads((copy / last / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"]).name
    other = first if best == last else last
    assert not same_weights(copy / best, copy / other)
    state["best_model_checkpoint"] = str(old / best)  # as written where the run was then
    (copy / last / "trainer_state.json").write_text(json.dumps(state))
    shutil.copy(old / other / "model.safetensors", old / best / "model.safetensors")  # the old path reused
    train(tones, tmp_path / "more", "--resume_from_checkpoint", str(copy / last))
    assert same_weights(tmp_path / "more", copy / best)


def test_a_best_checkpoint_found_nowhere_is_dropped_with_a_warning(tones, two_epoch_run, tmp_path, caplog):
    first, last = checkpoints(two_epoch_run)
    copy = tmp_path / "copy"
    shutil.copytree(two_epoch_run, copy, ignore=shutil.ignore_patterns(first))
    state = json.loads((copy / last / "trainer_state.json").read_text())
    state.update(best_model_checkpoint=str(tmp_path / "gone" / first), best_global_step=int(first.split("-")[1]),
                 best_metric=2.0)  # an accuracy no later evaluation reaches: it was kept before
    (copy / last / "trainer_state.json").write_text(json.dumps(state))
    train(tones, tmp_path / "more", "--resume_from_checkpoint", str(copy / last), "--num_train_epochs", "3")
    assert "is not beside it, so it is not used" in caplog.text
    final = json.loads((tmp_path / "more" / "trainer_state.json").read_text())
    assert Path(final["best_model_checkpoint"]).parent == tmp_path / "more"


def usual_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def test_the_weights_of_a_run_its_checkpoints_and_an_average_have_the_mode_of_any_other_file(two_epoch_run, tmp_path):
    from hfspeech.training.averaging import average_runs

    weights = [two_epoch_run / "model.safetensors", *two_epoch_run.glob("checkpoint-*/model.safetensors")]
    assert len(weights) == 3
    assert {path.stat().st_mode & 0o777 for path in weights} == {usual_mode()}
    assert (two_epoch_run / "config.json").stat().st_mode & 0o777 == usual_mode()
    average = average_runs([two_epoch_run, two_epoch_run / checkpoints(two_epoch_run)[0]], tmp_path / "average")
    assert (average / "model.safetensors").stat().st_mode & 0o777 == usual_mode()


def as_another_user(code: str) -> str:
    """What Python `code` prints (stdout, then stderr) in a process that file modes bind: root's override of them
    dropped (`setpriv`), as in a container run as another user than the one who copied the run in."""
    import subprocess
    import sys

    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads and writes any file, and setpriv (to drop that) is not installed")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    return done.stdout.strip() + done.stderr


def made_from_as_another_user(export_dir: Path, model_dir: Path) -> str:
    return as_another_user("from hfspeech.models.fingerprint import made_from; "
                           f"print(made_from({str(export_dir)!r}, {str(model_dir)!r}))")


def test_an_export_beside_weights_it_cannot_read_is_used_with_a_warning_not_refused(two_epoch_run, tmp_path):
    from hfspeech.models.fingerprint import write_traced_from

    (tmp_path / "export").mkdir()
    write_traced_from(two_epoch_run, tmp_path / "export")
    copy = tmp_path / "copy"  # copied: another inode, so the recorded stat no longer says it is the same
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(two_epoch_run / name, copy / name)
    (copy / "model.safetensors").chmod(0)
    said = made_from_as_another_user(tmp_path / "export", copy)
    assert said.startswith("True") and "cannot read model.safetensors" in said
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("{", '{"edited": 1, ', 1))
    assert made_from_as_another_user(tmp_path / "export", copy).startswith("False")


def resume_with_data_at(tmp_path: Path, data: Path, caplog) -> str:
    """`check_same_data` for a run trained on tmp_path/"data", resumed with `data` as --data_dir."""
    import logging
    from types import SimpleNamespace

    from hfspeech.training.arguments import DataArguments, ModelArguments
    from hfspeech.training.resume_inputs import DATA_RECORD_FILE, check_same_data, data_record

    checkpoint = tmp_path / "run" / "checkpoint-8"
    if not checkpoint.is_dir():
        checkpoint.mkdir(parents=True)
        record = data_record(None, DataArguments(data_dir=str(tmp_path / "data")), 42)
        (tmp_path / "run" / DATA_RECORD_FILE).write_text(json.dumps(record))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hfspeech.train"):
        check_same_data(str(checkpoint), ModelArguments(), DataArguments(data_dir=str(data)),
                        SimpleNamespace(seed=42, resume_from_checkpoint=str(checkpoint)))
    return caplog.text


def test_a_run_resumes_with_its_data_moved_elsewhere_and_refuses_other_clips_there(tmp_path, caplog):
    from hfspeech.training.checkpoints import CheckpointError

    write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000,))
    shutil.copytree(tmp_path / "data", tmp_path / "moved")
    said = resume_with_data_at(tmp_path, tmp_path / "moved", caplog)
    assert f"data_dir moved from {tmp_path / 'data'} to {tmp_path / 'moved'}, same files" in said
    clip = next((tmp_path / "moved").rglob("*.wav"))
    clip.write_bytes(clip.read_bytes() + b"\0\0")
    with pytest.raises(CheckpointError, match="its run had other data"):
        resume_with_data_at(tmp_path, tmp_path / "moved", caplog)


def test_predict_output_into_a_folder_it_cannot_write_is_one_line_naming_the_flag(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run").chmod(0o555)
    said = as_another_user("from hfspeech.errors import HfspeechError\n"
                           "from hfspeech.inference.outputs import PredictionWriter\n"
                           f"try: PredictionWriter({str(tmp_path / 'run' / 'preds.jsonl')!r})\n"
                           "except HfspeechError as error: print(error)")
    assert said == f"{tmp_path / 'run' / 'preds.jsonl'}: cannot write (Permission denied); make it writable, or give " \
                   "another --output file"


@pytest.mark.parametrize("code, remedy", [(errno.EROFS, "make it writable, or export elsewhere (--output)"),
                                          (errno.ENOSPC, "make room, or export elsewhere (--output)")])
def test_an_export_that_cannot_be_written_names_the_remedy_that_fits_the_reason(tmp_path, code, remedy):
    from hfspeech.errors import OutputWriteError
    from hfspeech.export.staging import staged_export

    with pytest.raises(OutputWriteError) as refused:
        with staged_export(tmp_path / "onnx") as scratch:
            raise OSError(code, os.strerror(code), str(scratch / "model.onnx"))
    assert str(refused.value).endswith(remedy)


def test_teacher_logits_not_cached_names_the_flag_for_another_folder(tmp_path, caplog):
    import numpy as np

    from hfspeech.training.teacher_cache import _save_logits

    (tmp_path / "file").write_text("a file where the cache's folder would go")
    _save_logits(tmp_path / "file" / "cache", np.zeros((2, 3), dtype=np.float32))
    assert "teacher logits not cached" in caplog.text and "--teacher_cache_dir" in caplog.text


def test_weights_another_user_cannot_read_are_named_as_such_not_as_missing(two_epoch_run, tmp_path):
    """safetensors says "No such file or directory" for a file it may not read: a Whisper run or checkpoint
    copied in with its owner's 0600 weights was refused as if they were missing."""
    copy = Path(shutil.copytree(two_epoch_run, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoint-*",
                                                                                                   "torchscript", "onnx")))
    (copy / "model.safetensors").chmod(0)
    said = as_another_user("from hfspeech.cli import main; main(['predict', "
                           f"{str(copy)!r}, '--backend', 'pytorch', 'README.md'])")
    assert "cannot read model.safetensors (permission denied" in said and "No such file" not in said


def test_a_tiny_pretrained_folder_has_readable_weights(tmp_path):
    """`hfspeech.synthetic.tiny` (the tests' and docs' local stand-ins) saved 0600 weights as train did."""
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    folder = save_tiny_ssl_model(str(tmp_path / "tiny"), "wav2vec2", ["a", "b"])
    assert (Path(folder) / "model.safetensors").stat().st_mode & 0o777 == usual_mode()
