"""Loose ends of run folders (session 40): `hfspeech average` removes a killed training run's final-save folder as
`train` does; a resume whose run recorded no listing of its moved data, or whose run_inputs.json was emptied, is
told so in one line with the way out; the moved-data refusal of a named checkpoint says how to start over."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hfspeech.cli import main as cli
from hfspeech.output_folders import locked_scratch
from hfspeech.training.arguments import DataArguments, ModelArguments
from hfspeech.training.checkpoints import FINAL_SAVE, CheckpointError
from hfspeech.training.resume_inputs import DATA_RECORD_FILE, LISTINGS_KEY, check_same_data, data_record
from tests.conftest import write_tone_folder
from tests.test_averaging import save_cnn


def killed_final_save(run: Path) -> Path:
    """What `kill -9` during a run's final save leaves: an unlocked `.final-save-partial-*` holding a model copy."""
    leftover = run / f".{FINAL_SAVE}-partial-k1lled_0"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"\0" * 64)
    return leftover


def average_into(tmp_path: Path, output: Path) -> int:
    for seed in range(2):
        if not (tmp_path / f"seed{seed}").exists():
            save_cnn(tmp_path / f"seed{seed}", seed)
    return cli(["average", str(tmp_path / "seed0"), str(tmp_path / "seed1"), "--output_dir", str(output)])


def test_average_removes_a_killed_runs_final_save_from_its_folder(tmp_path, capsys):
    """Left by a killed `train`: refused as the user's file in a folder holding nothing else, and carried along
    into an earlier average it replaced (train and resume remove it once they hold their folder)."""
    alone = killed_final_save(tmp_path / "alone")
    assert average_into(tmp_path, tmp_path / "alone") == 0, capsys.readouterr().err
    assert not alone.exists() and (tmp_path / "alone" / "model.safetensors").is_file()
    leftover = killed_final_save(tmp_path / "alone")
    assert average_into(tmp_path, tmp_path / "alone") == 0, capsys.readouterr().err
    assert not leftover.exists() and (tmp_path / "alone" / "config.json").is_file()


def test_average_keeps_a_live_runs_final_save(tmp_path):
    assert average_into(tmp_path, tmp_path / "soup") == 0
    live, handle = locked_scratch(tmp_path / "soup" / FINAL_SAVE)
    try:
        assert average_into(tmp_path, tmp_path / "soup") == 0
        assert live.is_dir()
    finally:
        os.close(handle)


def moved_run(tmp_path: Path, listings) -> tuple[Path, Path, Path]:
    """A run trained on `data`, its run_inputs.json's listings replaced by `listings`, and the data moved away."""
    old, moved = tmp_path / "data", tmp_path / "data_moved"
    write_tone_folder(old, clips_per_class=2, rates=(8000,))
    record = {**data_record(None, DataArguments(data_dir=str(old)), 42), LISTINGS_KEY: listings}
    checkpoint = tmp_path / "run" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (tmp_path / "run" / DATA_RECORD_FILE).write_text(json.dumps(record, indent=2))
    old.rename(moved)
    return checkpoint, old, moved


def resume(checkpoint: Path, data_dir: Path, named: bool = False) -> dict:
    return check_same_data(str(checkpoint), ModelArguments(), DataArguments(data_dir=str(data_dir)),
                           SimpleNamespace(seed=42, resume_from_checkpoint=str(checkpoint) if named else None))


@pytest.mark.parametrize("listings", [{}, [], {"data_dir": None}])
def test_a_run_that_listed_none_of_its_moved_data_is_told_so_with_the_link_that_resumes_it(tmp_path, listings):
    """Refused as "its run had other data" (data_dir OLD -> NEW), though nothing said the files differ."""
    checkpoint, old, moved = moved_run(tmp_path, listings)
    with pytest.raises(CheckpointError) as refused:
        resume(checkpoint, moved)
    said = str(refused.value)
    assert said == (f"{checkpoint}: cannot resume, its run recorded no listing of the files at {old} "
                    f"({DATA_RECORD_FILE} has none), so data at another path cannot be checked as the same; link the "
                    f"old path to the new one (`ln -s {moved} {old}`) and pass `--data_dir {old}`, or pass "
                    "--overwrite_output_dir to start over, or use a new --output_dir")
    subprocess.run(shlex.split(said.split("(`", 1)[1].split("`)", 1)[0]), check=True)
    assert resume(checkpoint, old)["data"]["data_dir"] == str(old)


def test_a_listed_run_whose_moved_data_differs_is_still_refused_as_other_data(tmp_path):
    checkpoint, old, moved = moved_run(tmp_path, {"data_dir": "0" * 40})
    with pytest.raises(CheckpointError, match=r"its run had other data or start \(data_dir "):
        resume(checkpoint, moved)


@pytest.mark.parametrize("content", ["{}", "[]", '{"seed": 42}', "null"])
def test_an_emptied_run_inputs_json_is_one_line_saying_what_to_do(tmp_path, content, caplog):
    """`[]` was an AttributeError traceback; `{}` read "its run had other data (audio_column None -> 'audio'; ...)"."""
    checkpoint, old, moved = moved_run(tmp_path, {})
    record = tmp_path / "run" / DATA_RECORD_FILE
    record.write_text(content)
    with pytest.raises(CheckpointError) as refused:
        resume(checkpoint, moved)
    assert str(refused.value) == (f"{record}: holds `{json.dumps(json.loads(content))}`, not a record of its run's "
                                  "data (emptied, cut short or edited); restore it, or delete it to resume unchecked "
                                  "(with the data and flags the run was trained with)")
    record.unlink()  # as the line says: then the resume goes on, unchecked, with the old warning
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        assert resume(checkpoint, moved)["data"]["data_dir"] == str(moved)
    assert f"its run recorded no {DATA_RECORD_FILE}" in caplog.text


def test_a_named_checkpoint_whose_data_moved_is_told_how_to_start_over(tmp_path):
    """It read "or name a checkpoint of this run or drop --resume_from_checkpoint": the checkpoint named is this
    run's (every one of them is refused alike), and without the flag the run resumed the same one, refused again."""
    checkpoint, old, moved = moved_run(tmp_path, {})
    with pytest.raises(CheckpointError) as refused:
        resume(checkpoint, moved, named=True)
    said = str(refused.value)
    assert said.endswith(f"(`ln -s {moved} {old}`) and pass `--data_dir {old}`, or drop --resume_from_checkpoint to "
                         "start over (with --overwrite_output_dir, or a new --output_dir)")
    assert "name a checkpoint of this run" not in said
    subprocess.run(shlex.split(said.split("(`", 1)[1].split("`)", 1)[0]), check=True)
    assert resume(checkpoint, old, named=True)["data"]["data_dir"] == str(old)


@pytest.mark.parametrize("record", ["[]", "null", '"a string"'])
def test_staging_a_run_whose_run_inputs_json_is_no_object_is_one_line(tmp_path, capsys, record):
    """The card reads the run's data kind and group column from it: `[]` was a 27-line AttributeError traceback
    (reviewer R2), as resume's was."""
    from tests.conftest import run_cli_output, save_random_baseline

    run = save_random_baseline(tmp_path / "run", "cnn", ["a", "b"], 0.5, conv_channels=[4, 8], n_mels=16)
    (run / "run_inputs.json").write_text(record, encoding="utf-8")
    code, out, err = run_cli_output(["stage", str(run), str(tmp_path / "dest")], capsys)
    assert (code, err) == (2, f"error: {run / 'run_inputs.json'}: not a JSON object as hfspeech writes it; fix or "
                              "delete it\n")
    assert not (tmp_path / "dest").exists()


def test_root_logger_kept_takes_off_only_the_handler_basic_config_gave_a_bare_root():
    """onnxruntime's quantizer runs `logging.basicConfig()` on a bare root: that handler goes; a user's own handler
    and level set meanwhile (another thread of a notebook) stay (reviewer R4: both were undone)."""
    import io

    from hfspeech.export.root_logger import root_logger_kept

    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    users = logging.StreamHandler(io.StringIO())
    users.setFormatter(logging.Formatter("%(message)s"))
    try:
        with root_logger_kept():
            logging.basicConfig()  # what onnxruntime's `logging.debug(...)` does
            root.addHandler(users)
            root.setLevel(logging.INFO)
        assert root.handlers == [users] and root.level == logging.INFO
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_a_metadata_file_linking_to_nothing_is_named_with_its_target(tmp_path):
    """datasets passed over it and trained; then it was refused as "cannot be read (No such file or directory)",
    which hid that it is a link (reviewer R4)."""
    from hfspeech.data.metadata_files import metadata_config_name
    from hfspeech.errors import DataError

    (tmp_path / "metadata.csv").write_text("file_name,label\na.wav,yes\n", encoding="utf-8")
    (tmp_path / "metadata.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(DataError) as refused:
        metadata_config_name([{"path": str(tmp_path / name)} for name in ("metadata.csv", "metadata.jsonl")])
    assert str(refused.value) == (f"{tmp_path / 'metadata.jsonl'}: a link to {tmp_path / 'gone.jsonl'}, which does "
                                  "not exist; mend or remove the link")
    name = metadata_config_name([{"path": str(tmp_path / "metadata.csv")}])
    (tmp_path / "metadata.csv").write_text("file_name,label\na.wav,YES\n", encoding="utf-8")
    assert metadata_config_name([{"path": str(tmp_path / "metadata.csv")}]) != name


RUN_ON_A_GPU = """
import gc, sys
import torch
torch.cuda.is_initialized = lambda: True  # as after a run on a GPU (this machine has none)
gc.disable()  # no collection but the command's own
from hfspeech.cli import main
code = main(["train", *sys.argv[1:]])
from transformers import PreTrainedModel
print(code, sum(isinstance(found, PreTrainedModel) for found in gc.get_objects()))
"""


def test_an_in_process_train_on_an_accelerator_gives_its_model_back_as_it_returns(tmp_path):
    """The model sits in reference cycles: on a GPU its memory stayed allocated after `main` returned, until Python's
    next full collection (reviewer R5: 2 models alive; the next train loaded its own beside them)."""
    from tests.conftest import TINY_CNN

    data = write_tone_folder(tmp_path / "data", clips_per_class=3, rates=(16000,))
    flags = ["--data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--model_type", "cnn",
             "--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--max_length_seconds", "0.5",
             "--report_to", "none"]
    done = subprocess.run([sys.executable, "-c", RUN_ON_A_GPU, *flags], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])
    assert done.stdout.splitlines()[-1:] == ["0 0"], done.stderr[-2000:]
