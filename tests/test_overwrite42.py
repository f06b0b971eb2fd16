"""`--overwrite_output_dir` starts over for real (`training.run_folder`): the earlier run's checkpoints, its reports of
the other kind and its exports are removed at the start, the user's own files are kept.

Before: the earlier run's `checkpoint-8` stayed beside the new run's `checkpoint-2`, and the same command without the
flag then resumed the earlier run's (its batch size, its learning rate) and trained nothing more; a multi-label run
over a single-label one left `test_classification_report.json` beside its `test_multilabel_report.json`; `onnx/`,
exported from the earlier weights, stayed for `hfspeech stage` to publish as this run's.
"""

from __future__ import annotations

import json
import shutil
import logging
from pathlib import Path

import pytest

from conftest import TINY_CNN, write_csv_manifest, write_tone_folder
from hfspeech.cli import main


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("tones") / "data", clips_per_class=6, rates=(16000,))


def train(data: list[str], output_dir: Path, *flags: str) -> int:
    return main(["train", *data, "--output_dir", str(output_dir), "--model_type", "cnn", "--config_overrides", TINY_CNN,
                 "--learning_rate", "1e-2", "--max_length_seconds", "0.5", "--seed", "0",
                 "--dataloader_num_workers", "0", "--save_strategy", "steps", "--save_steps", "2",
                 "--eval_strategy", "steps", "--eval_steps", "2", *flags])


def checkpoints(output_dir: Path) -> list[str]:
    return sorted(path.name for path in output_dir.glob("checkpoint-*"))


def test_the_earlier_runs_checkpoints_go_and_the_same_command_resumes_this_runs(tones, tmp_path, caplog):
    run = tmp_path / "run"
    data = ["--data_dir", str(tones)]
    assert train(data, run, "--num_train_epochs", "2", "--per_device_train_batch_size", "4") == 0
    assert "checkpoint-8" in checkpoints(run)  # the earlier run's last step
    again = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--learning_rate", "3e-3"]
    with caplog.at_level(logging.INFO, logger="hfspeech.train"):
        assert train(data, run, *again, "--overwrite_output_dir") == 0
    assert checkpoints(run) == ["checkpoint-2"]  # was checkpoint-2 beside the earlier run's checkpoint-8
    assert "--overwrite_output_dir: removed 14 of the earlier run's files and folders" in caplog.text
    caplog.clear()
    # The same run told to go on: it resumes its own checkpoint (the earlier run's checkpoint-8 was taken: step 8,
    # "nothing left to train", its model kept as this run's).
    with caplog.at_level(logging.INFO, logger="hfspeech.train"):
        assert train(data, run, *again[2:], "--max_steps", "4") == 0
    assert f"resuming from {run / 'checkpoint-2'}" in caplog.text
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["train_batch_size"] == 8


def multi_label_manifest(tones: Path, folder: Path) -> str:
    """The tone clips as a multi-label manifest: each clip its class, every third one 'noise' as well."""
    rows = []
    for i, path in enumerate(sorted(tones.glob("*/*.wav"))):
        labels = {path.parent.name, "noise"} if i % 3 == 0 else {path.parent.name}
        rows.append({"path": str(path), "labels": ";".join(sorted(labels))})
    folder.mkdir()
    return write_csv_manifest(folder / "all.csv", rows)


def test_a_multi_label_run_over_a_single_label_one_leaves_no_report_or_export_of_the_earlier(tones, tmp_path):
    run = tmp_path / "run"
    assert train(["--data_dir", str(tones)], run, "--num_train_epochs", "1", "--per_device_train_batch_size", "8") == 0
    assert (run / "test_classification_report.json").is_file()
    # An export of the earlier weights (written by `hfspeech export RUN`), a file of the user's beside it, notes.
    (run / "onnx").mkdir()
    for name in ("model.onnx", "model_quantized.onnx", "int8_check.json", "config.json", "traced_from.json"):
        (run / "onnx" / name).write_text("earlier export")
    (run / "onnx" / "my_benchmark.txt").write_text("mine")
    (run / "notes.txt").write_text("lr sweep, second try")
    (run / "evaluation").mkdir()
    (run / "evaluation" / "test_metrics.json").write_text("{}")
    manifest = multi_label_manifest(tones, tmp_path / "multi")
    assert train(["--train_file", manifest, "--label_column_name", "labels"], run, "--problem_type",
                 "multi_label_classification", "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
                 "--overwrite_output_dir") == 0
    assert (run / "test_multilabel_report.json").is_file()
    names = {path.name for path in run.iterdir()}
    assert not names & {"test_classification_report.json", "test_confusion_matrix.json", "test_confusion_matrix.png"}
    assert sorted(path.name for path in (run / "onnx").iterdir()) == ["my_benchmark.txt"]  # the export's files gone
    assert (run / "notes.txt").read_text() == "lr sweep, second try"
    assert (run / "evaluation" / "test_metrics.json").is_file()


def test_a_folder_with_no_trace_of_a_run_loses_nothing(tones, tmp_path):
    """--overwrite_output_dir into a folder of the user's: what is named like a run's file there is not known to be
    hfspeech's, so it stays (the model files are written over, as before)."""
    folder = tmp_path / "mine"
    (folder / "onnx").mkdir(parents=True)
    (folder / "onnx" / "model.onnx").write_text("another tool's")
    (folder / "metrics.json").write_text('{"mine": 1}')
    from types import SimpleNamespace

    from hfspeech.training.run_folder import start_over
    start_over(SimpleNamespace(output_dir=str(folder), overwrite_output_dir=True, should_save=True,
                               resume_from_checkpoint=None))
    assert (folder / "onnx" / "model.onnx").is_file() and (folder / "metrics.json").is_file()


def test_resuming_a_checkpoint_of_the_folder_keeps_its_run(tmp_path):
    """--overwrite_output_dir with --resume_from_checkpoint RUN/checkpoint-N continues that run: nothing removed
    (its checkpoint was deleted before it could be resumed from)."""
    from types import SimpleNamespace

    from hfspeech.training.run_folder import start_over
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "trainer_state.json").write_text("{}")
    args = SimpleNamespace(output_dir=str(run), overwrite_output_dir=True, should_save=True,
                           resume_from_checkpoint=str(run / "checkpoint-4"))
    start_over(args)
    assert (run / "checkpoint-4").is_dir() and (run / "trainer_state.json").is_file()
    args.resume_from_checkpoint = None
    start_over(args)
    assert not any(run.iterdir())


def test_a_checkpoint_that_cannot_be_removed_stops_the_run_in_one_line(tones, tmp_path, monkeypatch, capsys):
    """Left, it would be resumed as this run's; the disk's refusal (another user's folder) is simulated, as root
    removes anything."""
    import hfspeech.training.run_folder as run_folder

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    run = tmp_path / "run"
    (run / "checkpoint-8").mkdir(parents=True)
    (run / "trainer_state.json").write_text("{}")
    monkeypatch.setattr(run_folder.shutil, "rmtree", refused)
    assert train(["--data_dir", str(tones)], run, "--num_train_epochs", "1", "--overwrite_output_dir") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --output_dir {run}: --overwrite_output_dir cannot remove the earlier run's checkpoint-8 (Permission "
        "denied), which would pass for this run's; remove it yourself, or give another --output_dir")
    assert (run / "checkpoint-8").is_dir() and not (run / "run_inputs.json").exists()  # stopped before the data


def test_a_fresh_start_removes_every_file_of_the_run_folder_table(tmp_path):
    """docs/training.md's table of what a run leaves is the list: a name added there and not here would stay (the
    model too, since OV in session 43: kept, a killed new run left it passing for its own)."""
    from types import SimpleNamespace

    from hfspeech.training.run_folder import start_over
    from test_small_mends42 import run_folder_table
    for name in run_folder_table():
        path = tmp_path / name.replace("*", "3")
        if "*" in name or "." not in name:  # checkpoint-*/, torchscript/
            path.mkdir()
            (path / "config.json").write_text("{}")
        else:
            path.write_text("")
    start_over(SimpleNamespace(output_dir=str(tmp_path), overwrite_output_dir=True, should_save=True,
                               resume_from_checkpoint=None))
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def finished_run(tones: Path, run: Path) -> list[str]:
    assert train(["--data_dir", str(tones)], run, "--max_steps", "4", "--per_device_train_batch_size", "4") == 0
    return checkpoints(run)


def test_nothing_goes_before_the_runs_inputs_are_accepted(tones, tmp_path, capsys):
    """Reviewer R2: a typo in --data_dir removed the earlier run's checkpoints and records, then failed; and
    `--model_name_or_path RUN/checkpoint-4` lost its checkpoint before it was loaded."""
    run = tmp_path / "run"
    earlier = finished_run(tones, run)
    assert train(["--data_dir", str(tmp_path / "no-such-data")], run, "--overwrite_output_dir") == 2
    assert checkpoints(run) == earlier and (run / "metrics.json").is_file()
    capsys.readouterr()
    start = run / earlier[-1]
    assert main(["train", "--data_dir", str(tones), "--output_dir", str(run), "--model_name_or_path", str(start),
                 "--max_length_seconds", "0.5", "--max_steps", "1", "--overwrite_output_dir"]) == 2
    assert f"would remove the earlier run's {earlier[-1]}, which --model_name_or_path" in capsys.readouterr().err
    assert checkpoints(run) == earlier


def test_a_resume_through_a_link_or_another_tools_runs_folder_keeps_everything(tmp_path):
    from types import SimpleNamespace

    from hfspeech.training.run_folder import start_over
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "trainer_state.json").write_text("{}")
    (tmp_path / "link").symlink_to(run / "checkpoint-4")
    start_over(SimpleNamespace(output_dir=str(run), overwrite_output_dir=True, should_save=True,
                               resume_from_checkpoint=str(tmp_path / "link")))
    assert (run / "checkpoint-4").is_dir() and (run / "trainer_state.json").is_file()
    mine = tmp_path / "mine"  # TensorBoard's runs/ of another tool beside the user's own metrics: no hfspeech run
    (mine / "runs").mkdir(parents=True)
    (mine / "metrics.json").write_text('{"mine": 1}')
    start_over(SimpleNamespace(output_dir=str(mine), overwrite_output_dir=True, should_save=True,
                               resume_from_checkpoint=None))
    assert (mine / "metrics.json").is_file()


def test_a_start_stopped_half_way_leaves_no_checkpoint_to_resume(tmp_path, monkeypatch):
    """The checkpoints lose their completion mark first: killed after the first folder was removed, the earlier
    run's later checkpoints were whole, and the same command without the flag resumed them (reviewer R2)."""
    from types import SimpleNamespace

    import hfspeech.training.run_folder as run_folder
    from hfspeech.errors import UsageError
    run = tmp_path / "run"
    for step in (2, 4, 6):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    removed, real_rmtree = [], shutil.rmtree

    def stopped_after_one(path, *args, **kwargs):
        if removed:
            raise OSError(5, "Input/output error")
        removed.append(path)
        return real_rmtree(path)

    monkeypatch.setattr(run_folder.shutil, "rmtree", stopped_after_one)
    with pytest.raises(UsageError):
        run_folder.start_over(SimpleNamespace(output_dir=str(run), overwrite_output_dir=True, should_save=True,
                                              resume_from_checkpoint=None))
    assert checkpoints(run) == ["checkpoint-4", "checkpoint-6"]
    assert not list(run.glob("checkpoint-*/trainer_state.json"))


def test_a_teacher_elsewhere_in_the_students_folder_is_accepted_with_overwrite(tmp_path):
    """One inside a checkpoint it removes is refused by `run_folder.start_over` (test_distill_inputs43)."""
    from hfspeech.training.distill import parse_distill_args
    from tests.conftest import save_random_baseline

    kept = save_random_baseline(tmp_path / "run" / "teachers" / "big", "cnn", ["high", "low"], 0.5)  # not removed
    assert parse_distill_args(["--teacher", str(kept), "--data_dir", str(tmp_path), "--output_dir",
                               str(tmp_path / "run"), "--overwrite_output_dir"])[0].teacher == str(kept)
