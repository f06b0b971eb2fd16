"""The warning for a kept "best" model that won a tie its metric cannot break (hfspeech.training.best_model)."""

from types import SimpleNamespace

from hfspeech.training.best_model import tied_best_metric_warning, warn_if_best_metric_tied


def history(accuracies, losses):
    return [{"eval_accuracy": a, "eval_loss": l, "step": 10 * (i + 1)}
            for i, (a, l) in enumerate(zip(accuracies, losses))] + [{"train_loss": 0.3, "step": 30}]


def test_a_saturated_accuracy_that_kept_the_first_tied_epoch_is_reported_with_both_steps():
    message = tied_best_metric_warning(history([0.9, 1.0, 1.0, 1.0], [0.5, 0.30, 0.10, 0.12]), "accuracy", True, 20)
    assert message is not None
    assert "step 20" in message and "step 30" in message and "4 evaluations" not in message
    assert "3 evaluations" in message and "--metric_for_best_model loss" in message


def test_no_warning_for_a_unique_best_a_tie_whose_kept_loss_is_lowest_or_loss_selection():
    assert tied_best_metric_warning(history([0.9, 1.0, 0.95], [0.5, 0.3, 0.2]), "accuracy", True, 20) is None
    assert tied_best_metric_warning(history([1.0, 1.0], [0.1, 0.2]), "accuracy", True, 10) is None
    assert tied_best_metric_warning(history([1.0, 1.0], [0.3, 0.2]), "loss", False, 20) is None
    assert tied_best_metric_warning(history([1.0, 1.0], [0.3, 0.2]), "eval_accuracy", True, None) is None


def test_a_lower_is_better_metric_ties_at_its_minimum():
    rows = [{"eval_wer": w, "eval_loss": l, "step": s} for w, l, s in ((0.2, 0.5, 1), (0.1, 0.4, 2), (0.1, 0.3, 3))]
    assert "step 3" in tied_best_metric_warning(rows, "wer", False, 2)


def test_the_trainer_helper_reads_the_kept_checkpoint_and_logs(caplog):
    args = SimpleNamespace(load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True)
    state = SimpleNamespace(best_model_checkpoint="/runs/x/checkpoint-10", log_history=history([1.0, 1.0], [0.3, 0.1]))
    with caplog.at_level("WARNING", logger="hfspeech.train"):
        message = warn_if_best_metric_tied(SimpleNamespace(args=args, state=state))
    assert message and message in caplog.text
    args.load_best_model_at_end = False
    assert warn_if_best_metric_tied(SimpleNamespace(args=args, state=state)) is None
