"""Three leftovers of session 34's review: report figures titled with the clips they score (not `test:` over a run's
validation clips, `train:` over an evaluated folder); the tied-best warning of a run resumed with another metric
reading only the evaluations its best was chosen among; a `--workers` server run in this process putting back the
environment and the signal handlers (uvicorn's supervisor kept SIGINT and SIGTERM: Ctrl-C did nothing after)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from transformers import TrainerState

from hfspeech.evaluation.report import write_evaluation_report, write_multilabel_report
from hfspeech.training.best_model import warn_if_best_metric_tied
from hfspeech.training.resumed_best import BestMetricChoice, ResumedBestCheckpoint
from tests.conftest import TONE_CLASSES, run_cli_output, save_random_baseline, write_tone_folder
from tests.test_moved_runs32 import checkpoints, tones, train  # noqa: F401  (tones: a fixture)
from tests.test_resume_metric34 import accuracy_run, resume  # noqa: F401  (accuracy_run: a fixture)


def saved_titles(monkeypatch) -> dict[str, str]:
    """The title of every figure saved from here on, by file name, read from the figure as it is saved."""
    from matplotlib.figure import Figure

    titles, real = {}, Figure.savefig

    def recording(figure, path, *args, **kwargs):
        titles[os.path.basename(str(path))] = figure.axes[0].get_title()
        return real(figure, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return titles


def test_a_flat_folder_evaluated_titles_its_matrix_with_its_clips_not_train(tmp_path, monkeypatch, capsys):
    data = write_tone_folder(tmp_path / "tones", clips_per_class=2, rates=(8000,))
    model = save_random_baseline(tmp_path / "cnn", "cnn", list(TONE_CLASSES), 0.5, conv_channels=[4, 8], n_mels=16)
    titles = saved_titles(monkeypatch)
    code, _, err = run_cli_output(["evaluate", str(model), "--data_dir", str(data), "--output_dir",
                                   str(tmp_path / "evaluation")], capsys)
    assert code == 0, err
    assert titles["train_confusion_matrix.png"].startswith(f"clips of {data}: accuracy "), titles


def test_a_run_without_a_test_split_titles_its_test_matrix_with_the_validation_clips(tmp_path, monkeypatch):
    data = write_tone_folder(tmp_path / "tones", clips_per_class=4, rates=(8000,))
    titles = saved_titles(monkeypatch)
    train(data, tmp_path / "run", "--test_split_percentage", "0", "--num_train_epochs", "1")
    assert titles["test_confusion_matrix.png"].startswith("validation clips: accuracy "), titles


def test_the_figures_name_the_clips_as_the_warnings_do(tmp_path, monkeypatch, caplog):
    """The multi-label writer takes `clips` as the single-label one does; without it, `{prefix} clips`."""
    titles = saved_titles(monkeypatch)
    truth = np.array([[1, 0], [0, 1], [1, 1]])
    write_multilabel_report(str(tmp_path / "a"), truth * 0.8 + 0.1, truth, ["dog", "siren"], [0.5, 0.5],
                            prefix="train", clips=f"clips of {tmp_path}")
    assert titles["train_per_class_ap.png"].startswith(f"clips of {tmp_path}: mAP "), titles
    write_multilabel_report(str(tmp_path / "b"), np.full((2, 2), 0.9), np.zeros((2, 2), dtype=int), ["dog", "siren"],
                            [0.5, 0.5], clips="validation clips")
    assert titles["test_per_class_ap.png"] == "validation clips: no event in any clip; false alarms on 2 of 2 clips"
    with caplog.at_level("WARNING", logger="hfspeech.evaluation"):
        write_evaluation_report(str(tmp_path / "c"), [0, 0], [0, 1], ["yes", "no"], prefix="dev")
    assert "every one of the 2 dev clips was predicted" in caplog.text
    assert titles["dev_confusion_matrix.png"].startswith("dev clips: accuracy 0.500"), titles


# The evaluations of a run trained 3 epochs by accuracy and resumed to 6 by balanced_accuracy, as its
# trainer_state.json logs them (a real run of tests.test_moved_runs32.train, values kept to 4 digits): every
# evaluation holds every metric, those before the resume too. Step 6 (the resumed one) was the accuracy run's best.
BEFORE_RESUME = [{"eval_loss": 1.0994, "eval_accuracy": 0.0, "eval_balanced_accuracy": 0.0, "step": 2},
                 {"eval_loss": 1.0971, "eval_accuracy": 0.0, "eval_balanced_accuracy": 0.0, "step": 4},
                 {"eval_loss": 1.0961, "eval_accuracy": 0.5, "eval_balanced_accuracy": 0.5, "step": 6}]
AFTER_RESUME = [{"eval_loss": 1.0940, "eval_accuracy": 0.5, "eval_balanced_accuracy": 0.5, "step": 8},
                {"eval_loss": 1.0913, "eval_accuracy": 0.5, "eval_balanced_accuracy": 0.5, "step": 10},
                {"eval_loss": 1.0899, "eval_accuracy": 0.5, "eval_balanced_accuracy": 0.5, "step": 12}]
BALANCED = SimpleNamespace(metric_for_best_model="balanced_accuracy", greater_is_better=True,
                           load_best_model_at_end=True)


def resumed_run_warning(before: list[dict], after: list[dict], recorded: dict, best: str, resumed_from: str,
                        kept_step: int) -> str:
    """The tie warning of a run resumed at `before`'s last step with balanced_accuracy: the callbacks run on the state
    read from a checkpoint recording `recorded` (its best `best`) as Trainer runs them, then the evaluations `after`,
    the best kept at `kept_step`."""
    state = TrainerState(global_step=before[-1]["step"], max_steps=12, best_model_checkpoint=best, best_metric=0.5,
                         best_global_step=int(best.rsplit("-", 1)[1]), log_history=list(before),
                         stateful_callbacks={"BestMetricChoice": {"args": recorded, "attributes": {}}})
    choice, resumed = BestMetricChoice(), ResumedBestCheckpoint(resumed_from)
    for callback in (choice, resumed):  # train_session adds them in this order
        callback.on_train_begin(BALANCED, state, None)
    choice.on_step_begin(BALANCED, state, None)
    state.log_history += after
    state.best_model_checkpoint = f"{os.path.dirname(resumed_from)}/checkpoint-{kept_step}"
    trainer = SimpleNamespace(args=BALANCED, state=state, callback_handler=SimpleNamespace(callbacks=[choice, resumed]))
    return warn_if_best_metric_tied(trainer)


def test_a_tie_counts_only_the_evaluations_of_the_metric_that_chose_the_kept_best():
    """As the real run logged it: 'tied at its best (0.5) at 4 evaluations', step 6 (chosen among by accuracy)
    counted with the three after the resume."""
    message = resumed_run_warning(BEFORE_RESUME, AFTER_RESUME, {"metric_for_best_model": "accuracy",
                                                                "greater_is_better": True},
                                  "run/checkpoint-6", "run/checkpoint-6", kept_step=8)
    assert message is not None and "at 3 evaluations" in message, message
    assert "step 8" in message and "step 12 had loss 1.09" in message


def test_an_earlier_evaluation_scoring_above_the_kept_best_no_longer_hides_its_tie():
    """Step 6 scored balanced accuracy 1.0 under the accuracy run: no later evaluation reached it, so the kept
    step 8 was not "at the best" and the tie of steps 8, 10 and 12 went unsaid."""
    before = BEFORE_RESUME[:2] + [{**BEFORE_RESUME[2], "eval_balanced_accuracy": 1.0}]
    message = resumed_run_warning(before, AFTER_RESUME, {"metric_for_best_model": "accuracy",
                                                         "greater_is_better": True},
                                  "run/checkpoint-6", "run/checkpoint-6", kept_step=8)
    assert message is not None and "tied at its best (0.5) at 3 evaluations" in message, message


def test_a_best_not_found_at_the_resume_is_no_tie_either(tmp_path):
    """The same metric, but the earlier best is neither beside the resumed checkpoint nor at its recorded path
    (`resumed_best.repoint_best_checkpoint` forgets it): step 6 tied and had the lowest loss, yet was no candidate."""
    before = BEFORE_RESUME[:2] + [{**BEFORE_RESUME[2], "eval_loss": 0.5}]
    message = resumed_run_warning(before, AFTER_RESUME, {"metric_for_best_model": "balanced_accuracy",
                                                         "greater_is_better": True},
                                  str(tmp_path / "gone/checkpoint-6"), str(tmp_path / "copy/checkpoint-6"), kept_step=8)
    assert message is not None and "at 3 evaluations" in message and "step 6" not in message, message


def test_a_run_resumed_again_with_the_same_metric_keeps_the_step_its_candidates_begin_after(tmp_path):
    """A run resumed at step 6 with balanced_accuracy and again at step 10 (same metric): its best, step 8, is found
    beside the resumed checkpoint and kept; step 6, before the first resume, stays out."""
    run = tmp_path / "run"
    (run / "checkpoint-8").mkdir(parents=True)
    (run / "checkpoint-8" / "trainer_state.json").write_text(json.dumps({"global_step": 8, "best_metric": 0.5}))
    before = BEFORE_RESUME[:2] + [{**BEFORE_RESUME[2], "eval_loss": 0.5}] + AFTER_RESUME[:2]
    message = resumed_run_warning(before, AFTER_RESUME[2:], {"metric_for_best_model": "balanced_accuracy",
                                                             "greater_is_better": True, "since_step": 6},
                                  str(run / "checkpoint-8"), str(run / "checkpoint-10"), kept_step=8)
    assert message is not None and "at 3 evaluations" in message and "step 6" not in message, message


def test_a_real_resume_with_another_metric_records_where_its_candidates_begin(tones, accuracy_run, tmp_path):
    """Trainer saves the record (`BestMetricChoice`, an ExportableState) in each checkpoint the resumed run writes."""
    final = resume(tones, accuracy_run, tmp_path / "B", "--metric_for_best_model", "balanced_accuracy")
    resumed_at = int(checkpoints(accuracy_run)[-1].split("-")[1])
    assert final["stateful_callbacks"]["BestMetricChoice"]["args"]["since_step"] == resumed_at
    for name in checkpoints(tmp_path / "B"):
        saved = json.loads((tmp_path / "B" / name / "trainer_state.json").read_text())
        assert saved["stateful_callbacks"]["BestMetricChoice"]["args"]["since_step"] == resumed_at


WORKER_VARIABLES = ("HFSPEECH_HEADER_TIMEOUT", "HFSPEECH_SERVE_SETTINGS", "PROMETHEUS_MULTIPROC_DIR")
SUPERVISED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # among those uvicorn's worker supervisor takes over


def health(port: int):
    from hfspeech.serve.launcher import health_status

    return health_status(f"http://127.0.0.1:{port}")


def serve_with_workers(model: Path, until_healthy: bool) -> tuple[dict, dict]:
    """Run the real `run_server(..., workers=2)` here, in the main thread (uvicorn's supervisor sets signal handlers,
    which only it may), and Ctrl-C it as a user would, once a worker answers healthy (`until_healthy`) or at once:
    (the worker variables and /health status seen while it ran, whether each signal handler was put back). The
    handlers are put back here either way."""
    from hfspeech.serve.app import ServeSettings, run_server
    from hfspeech.serve.launcher import free_port

    port, seen, stopped = free_port(), {}, threading.Event()
    handlers = {number: signal.getsignal(number) for number in SUPERVISED}

    def interrupt_once_served():
        deadline, status = time.monotonic() + 90, health(port)
        while until_healthy and not stopped.is_set() and time.monotonic() < deadline and status != "ok":
            time.sleep(0.2)
            status = health(port)
        # the answer that said "ok" is kept: asking again may reach the other worker, still loading (CI saw it twice)
        seen.update({name: os.environ.get(name) for name in WORKER_VARIABLES}, status=status)
        while not stopped.is_set() and signal.getsignal(signal.SIGINT) is handlers[signal.SIGINT]:
            time.sleep(0.05)  # a SIGINT before the supervisor's handler would interrupt pytest itself
        if not stopped.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    helper = threading.Thread(target=interrupt_once_served, daemon=True)
    helper.start()
    try:
        run_server(ServeSettings(model=str(model), request_timeout=7.0), port=port, workers=2, log_level="error")
    finally:
        stopped.set()
        left = {number: signal.getsignal(number) for number in SUPERVISED}
        for number, handler in handlers.items():
            signal.signal(number, handler)
        helper.join()
    return seen, {number: left[number] is handler for number, handler in handlers.items()}


@pytest.fixture
def no_worker_variables(monkeypatch):
    for name in WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_server_with_workers_that_served_here_puts_the_environment_back(no_worker_variables, tmp_path):
    """Passed for the variables before this session's change (`serve.environment`), kept as their guard; the
    signal handlers were uvicorn's after it returned (SIGINT's appended to the list of a supervisor gone)."""
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, conv_channels=[4, 8], n_mels=16)
    seen, handlers_back = serve_with_workers(model, until_healthy=True)
    assert seen["status"] == "ok" and seen["HFSPEECH_HEADER_TIMEOUT"] == "7.0"
    assert json.loads(seen["HFSPEECH_SERVE_SETTINGS"])["model"] == str(model)
    assert handlers_back == {number: True for number in SUPERVISED}
    assert not any(name in os.environ for name in WORKER_VARIABLES)
    assert seen["PROMETHEUS_MULTIPROC_DIR"] and not os.path.exists(seen["PROMETHEUS_MULTIPROC_DIR"])


def test_a_server_with_workers_leaves_the_users_own_metrics_folder_alone(no_worker_variables, tmp_path,
                                                                         monkeypatch):
    """Stopped as its workers start (the folder is chosen before they do): this one need not wait for them."""
    own = tmp_path / "metrics"
    own.mkdir()
    (own / "counter_1.db").write_bytes(b"the user's")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(own))
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, conv_channels=[4, 8], n_mels=16)
    seen, handlers_back = serve_with_workers(model, until_healthy=False)
    assert seen["PROMETHEUS_MULTIPROC_DIR"] == str(own) == os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert (own / "counter_1.db").read_bytes() == b"the user's"
    assert handlers_back == {number: True for number in SUPERVISED}
    assert "HFSPEECH_HEADER_TIMEOUT" not in os.environ and "HFSPEECH_SERVE_SETTINGS" not in os.environ


def test_a_multi_label_model_on_a_flat_folder_titles_its_ap_chart_with_its_clips(tmp_path, monkeypatch, capsys):
    """evaluate's multi-label branch passes the clips' name on, as its single-label branch does."""
    data = write_tone_folder(tmp_path / "tones", clips_per_class=2, rates=(8000,))
    model = save_random_baseline(tmp_path / "cnn", "cnn", list(TONE_CLASSES), 0.5, conv_channels=[4, 8], n_mels=16,
                                 problem_type="multi_label_classification")
    titles = saved_titles(monkeypatch)
    code, _, err = run_cli_output(["evaluate", str(model), "--data_dir", str(data), "--output_dir",
                                   str(tmp_path / "evaluation")], capsys)
    assert code == 0, err
    assert titles["train_per_class_ap.png"].startswith(f"clips of {data}: mAP "), titles
