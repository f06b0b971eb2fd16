"""A run resumed with another --metric_for_best_model (or direction) than its checkpoint's: Trainer compared the new
metric's evaluations with the checkpoint's best value of the old one and kept a "best" chosen by neither, without a
word (upgrade audit, session 33). Each checkpoint now records which metric chose its best (`BestMetricChoice`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.test_moved_runs32 import checkpoints, same_weights, tones, train  # noqa: F401  (tones: a fixture)

OLD_BEST = 2.0  # a score no later evaluation reaches, so a best that is kept shows


@pytest.fixture(scope="module")
def accuracy_run(tones, tmp_path_factory) -> Path:
    """Two epochs chosen by accuracy (the default), the first checkpoint its best with OLD_BEST."""
    run = tmp_path_factory.mktemp("accuracy") / "run"
    train(tones, run)
    first, _ = checkpoints(run)
    for name in checkpoints(run):
        path = run / name / "trainer_state.json"
        state = json.loads(path.read_text())
        state.update(best_model_checkpoint=str(run / first), best_global_step=int(first.split("-")[1]),
                     best_metric=OLD_BEST)
        path.write_text(json.dumps(state))
    return run


def resume(tones: Path, run: Path, output_dir: Path, *extra: str) -> dict:
    """Resume `run`'s last checkpoint into `output_dir` for two more epochs; the final trainer_state.json."""
    train(tones, output_dir, "--resume_from_checkpoint", str(run / checkpoints(run)[-1]), "--num_train_epochs", "4",
          *extra)
    return json.loads((output_dir / "trainer_state.json").read_text())


def test_a_run_resumed_with_another_metric_keeps_the_best_of_its_own_evaluations(tones, accuracy_run, tmp_path,
                                                                                    caplog):
    """Before: A's first checkpoint (best accuracy OLD_BEST) was kept, no balanced_accuracy reaching 2.0."""
    final = resume(tones, accuracy_run, tmp_path / "B", "--metric_for_best_model", "balanced_accuracy")
    resumed_at = int(checkpoints(accuracy_run)[-1].split("-")[1])
    new = [entry for entry in final["log_history"] if "eval_balanced_accuracy" in entry and entry["step"] > resumed_at]
    best = max(entry["eval_balanced_accuracy"] for entry in new)
    best_step = next(entry["step"] for entry in new if entry["eval_balanced_accuracy"] == best)
    assert final["best_metric"] == best
    assert final["best_model_checkpoint"] == str(tmp_path / "B" / f"checkpoint-{best_step}")
    assert same_weights(tmp_path / "B", tmp_path / "B" / f"checkpoint-{best_step}")
    assert ("was chosen by accuracy (higher is better), not by this run's --metric_for_best_model / "
            "--greater_is_better, balanced_accuracy (higher is better), so it is not used") in caplog.text


def test_a_run_resumed_with_the_same_metric_keeps_the_checkpoints_best(tones, accuracy_run, tmp_path, caplog):
    """`eval_accuracy` is `accuracy` to Trainer: the earlier best stands, without a warning."""
    first = checkpoints(accuracy_run)[0]
    final = resume(tones, accuracy_run, tmp_path / "B", "--metric_for_best_model", "eval_accuracy")
    assert "was chosen by" not in caplog.text
    assert (final["best_model_checkpoint"], final["best_metric"]) == (str(accuracy_run / first), OLD_BEST)
    assert same_weights(tmp_path / "B", accuracy_run / first)


def test_a_checkpoint_that_records_no_metric_resumes_as_before(tones, accuracy_run, tmp_path, caplog):
    """A checkpoint from before the record (or made elsewhere) keeps its best, and its resumed run saves checkpoints
    (Trainer's save looks the record up by name in the resumed state)."""
    copy = tmp_path / "A"
    shutil.copytree(accuracy_run, copy)
    for name in checkpoints(copy):
        path = copy / name / "trainer_state.json"
        state = json.loads(path.read_text())
        del state["stateful_callbacks"]["BestMetricChoice"]
        path.write_text(json.dumps(state))
    final = resume(tones, copy, tmp_path / "B", "--metric_for_best_model", "balanced_accuracy")
    assert "was chosen by" not in caplog.text
    assert (final["best_model_checkpoint"], final["best_metric"]) == (str(copy / checkpoints(copy)[0]), OLD_BEST)
    saved = json.loads((tmp_path / "B" / checkpoints(tmp_path / "B")[-1] / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["BestMetricChoice"]["args"]["metric_for_best_model"] == "balanced_accuracy"


def test_a_flipped_direction_forgets_the_best_of_the_same_metric(caplog):
    """--greater_is_better false on a run whose best was the highest accuracy: the best of the other direction."""
    from transformers import TrainerState

    from hfspeech.training.resumed_best import BestMetricChoice, forget_best_of_another_metric

    recorded = {"BestMetricChoice": BestMetricChoice("accuracy", True).state()}
    state = TrainerState(best_model_checkpoint="run/checkpoint-2", best_global_step=2, best_metric=0.5,
                         stateful_callbacks=recorded)
    forget_best_of_another_metric(state, SimpleNamespace(metric_for_best_model="accuracy", greater_is_better=True),
                                  "run/checkpoint-4")
    assert (state.best_model_checkpoint, state.best_metric) == ("run/checkpoint-2", 0.5)
    forget_best_of_another_metric(state, SimpleNamespace(metric_for_best_model="accuracy", greater_is_better=False),
                                  "run/checkpoint-4")
    assert (state.best_model_checkpoint, state.best_global_step, state.best_metric) == (None, None, None)
    assert "accuracy (higher is better), not by this run's --metric_for_best_model / --greater_is_better, " \
           "accuracy (lower is better)" in caplog.text


def test_a_finished_run_run_again_with_another_metric_keeps_its_best(tones, accuracy_run, tmp_path, caplog):
    """Nothing left to train (the run resumes itself at its last step): forgetting the best, with no evaluation to
    come, kept the last checkpoint instead (review R1; every fold of a cross-validation run again)."""
    copy = tmp_path / "A"
    shutil.copytree(accuracy_run, copy)
    first = checkpoints(copy)[0]
    shutil.copy(copy / first / "model.safetensors", copy / "model.safetensors")  # as the run kept its (faked) best
    train(tones, copy, "--metric_for_best_model", "loss")
    final = json.loads((copy / "trainer_state.json").read_text())
    assert "no step is left to train, so it is kept" in caplog.text
    assert (final["best_model_checkpoint"], final["best_metric"]) == (str(copy / first), OLD_BEST)
    assert same_weights(copy, copy / first)
