"""A rerun with nothing left to train (the same command into a finished run's folder, or a run killed after its
last checkpoint) keeps the finished run's records: metrics.json, all_results.json and trainer_state.json lost its
train loss (0.0) and throughput to the empty session, and config.json its problem_type (null) before."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

from hfspeech.cli import main
from hfspeech.training.checkpoints import CheckpointError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kill_resume  # noqa: E402

EPOCHS = 2
SINGLE_LABEL = "single_label_classification"


def command(data_dir: Path, output_dir: Path) -> list[str]:
    return kill_resume.train_command(data_dir, output_dir, seed=0, epochs=EPOCHS) + ["--logging_strategy", "steps",
                                                                                          "--logging_steps", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return kill_resume.write_data(tmp_path_factory.mktemp("rerun") / "data", clips_per_class=8)


@pytest.fixture(scope="module")
def finished(data_dir, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    assert main(command(data_dir, output_dir)) == 0
    return output_dir


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def summaries(output_dir: Path) -> list[dict]:
    """trainer_state.json's end-of-training entries (a step's entry has "loss", not "train_loss")."""
    return [entry for entry in read(output_dir / "trainer_state.json")["log_history"] if "train_runtime" in entry]


def train_numbers(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key.startswith("train_")}


def checkpoint_only(finished: Path, tmp_path: Path, which: int = -1) -> Path:
    """A run folder as a kill right after checkpoint `which` leaves it: that checkpoint and run_inputs.json."""
    checkpoints = sorted(finished.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    run = tmp_path / "run"
    shutil.copytree(checkpoints[which], run / checkpoints[which].name)
    shutil.copy(finished / "run_inputs.json", run)
    return run


def test_the_same_command_rerun_into_a_finished_run_keeps_its_records(data_dir, finished, tmp_path, caplog):
    run = shutil.copytree(finished, tmp_path / "run")
    caplog.set_level(logging.INFO, logger="hfspeech.train")
    assert main(command(data_dir, run)) == 0
    before, after = read(finished / "metrics.json"), read(run / "metrics.json")
    assert after["train_loss"] > 0 and train_numbers(after) == train_numbers(before)
    assert train_numbers(read(run / "all_results.json")) == train_numbers(read(finished / "all_results.json"))
    assert summaries(run) == summaries(finished)
    assert after["test_accuracy"] == before["test_accuracy"]
    for config in (run / "config.json", run / "torchscript" / "config.json"):
        assert read(config)["problem_type"] == SINGLE_LABEL, config
    assert "nothing left to train" in caplog.text


def test_a_run_killed_after_its_last_checkpoint_reports_no_train_loss_of_its_own(data_dir, finished, tmp_path,
                                                                                    caplog):
    run = checkpoint_only(finished, tmp_path)
    caplog.set_level(logging.INFO, logger="hfspeech.train")
    assert main(command(data_dir, run)) == 0
    metrics = read(run / "metrics.json")
    assert not {"train_loss", "train_runtime", "train_samples_per_second"} & set(metrics), metrics
    assert metrics["train_epoch"] == EPOCHS and "test_accuracy" in metrics
    assert summaries(run) == []  # not a train_loss of 0.0 in the log either
    assert read(run / "config.json")["problem_type"] == SINGLE_LABEL
    assert "stopped before it recorded its train loss" in caplog.text


def test_a_resume_with_steps_left_reports_trainers_numbers_as_before(data_dir, finished, tmp_path, caplog):
    """Unchanged: `train_loss` is Trainer's, this session's summed loss over all the run's steps."""
    run = checkpoint_only(finished, tmp_path, which=0)
    start = read(next(run.glob("checkpoint-*")) / "trainer_state.json")["global_step"]
    caplog.set_level(logging.INFO, logger="hfspeech.train")
    assert main(command(data_dir, run)) == 0
    assert "nothing left to train" not in caplog.text
    state, metrics = read(run / "trainer_state.json"), read(run / "metrics.json")
    session_losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry and entry["step"] > start]
    assert len(session_losses) == state["global_step"] - start > 0
    assert metrics["train_loss"] == pytest.approx(sum(session_losses) / state["global_step"], rel=1e-3)
    assert summaries(run)[-1]["train_loss"] == metrics["train_loss"] and metrics["train_samples_per_second"] > 0


def test_a_built_classifier_records_its_problem_type_before_any_step():
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import build_model

    single, _ = build_model(ModelArguments(model_type="cnn", config_overrides=kill_resume.TINY_CNN), ["a", "b"])
    assert single.config.problem_type == SINGLE_LABEL
    multi, _ = build_model(ModelArguments(model_type="cnn", config_overrides=kill_resume.TINY_CNN,
                                          problem_type="multi_label_classification"), ["a", "b"])
    assert multi.config.problem_type == "multi_label_classification"


def test_a_checkpoint_whose_config_has_no_problem_type_still_resumes(tmp_path):
    """Older checkpoints (and transformers' own heads) left problem_type null: single-label, so not a change."""
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import build_model
    from hfspeech.training.resume_inputs import check_checkpoint_matches

    model, _ = build_model(ModelArguments(model_type="cnn", config_overrides=kill_resume.TINY_CNN), ["a", "b"])
    for problem_type in (None, "multi_label_classification"):
        model.config.problem_type = problem_type
        model.config.save_pretrained(tmp_path / str(problem_type))
    model.config.problem_type = SINGLE_LABEL
    check_checkpoint_matches(str(tmp_path / "None"), model.config, named=False)
    with pytest.raises(CheckpointError, match="problem_type 'multi_label_classification' -> 'single_label"):
        check_checkpoint_matches(str(tmp_path / "multi_label_classification"), model.config, named=False)


def test_a_one_label_checkpoint_saved_as_regression_still_resumes(tmp_path):
    """A 1-label run is left to its first step, which makes it regression: a null built value takes the
    checkpoint's, as before (it was refused "problem_type 'regression' -> 'single_label_classification'"; review)."""
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import build_model
    from hfspeech.training.resume_inputs import check_checkpoint_matches

    model, _ = build_model(ModelArguments(model_type="cnn", config_overrides=kill_resume.TINY_CNN), ["only"])
    assert model.config.problem_type is None
    model.config.problem_type = "regression"
    model.config.save_pretrained(tmp_path)
    model.config.problem_type = None
    check_checkpoint_matches(str(tmp_path), model.config, named=False)


def test_a_finished_runs_checkpoint_resumed_into_another_folder_reports_that_runs_loss(data_dir, finished, tmp_path,
                                                                                           caplog):
    """The finished run is the checkpoint's own folder, not --output_dir (which said "stopped before it recorded
    its train loss" of a run that had, or could report another run's loss; review)."""
    last = max(finished.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    output_dir = tmp_path / "elsewhere"
    caplog.set_level(logging.INFO, logger="hfspeech.train")
    assert main(command(data_dir, output_dir) + ["--resume_from_checkpoint", str(last)]) == 0
    assert read(output_dir / "metrics.json")["train_loss"] == read(finished / "metrics.json")["train_loss"]


def test_a_one_label_run_is_refused_a_multi_label_checkpoint():
    """Only a first step's own choice is taken from the checkpoint: a multi-label 1-label detector resumed without
    the flag would switch from BCE to MSE without a word (review 3)."""
    from hfspeech.training.resume_inputs import config_differences

    assert config_differences({"problem_type": "multi_label_classification"}, {"problem_type": None}) == [
        "problem_type 'multi_label_classification' -> None"]
    assert config_differences({"problem_type": "regression"}, {"problem_type": None}) == []
