"""Speaker ID and sound events of hundreds to thousands of classes: the confusion matrix names the errors it can no
longer name on its axes, and a card whose per-class tables are folded keeps its weakest classes in view."""

from __future__ import annotations

import numpy as np

from hfspeech.evaluation.report_plots import confusion_figure, most_confused_pairs
from hfspeech.hub.card_classes import COLLAPSE_AFTER, WEAKEST_SHOWN, multi_label_per_class_table, per_class_table
from hfspeech.inference.plot_labels import MAX_TICK_LABELS


def speakers(count: int) -> list[str]:
    return [f"speaker_{i:04d}" for i in range(count)]


def matrix_with_errors(count: int) -> np.ndarray:
    """Two clips right for every class, and errors: 7 -> 42 five times, 3 -> 9 three times, 150 -> 2 once."""
    matrix = 2 * np.eye(count, dtype=np.int64)
    matrix[7, 42], matrix[3, 9], matrix[150, 2] = 5, 3, 1
    return matrix


def test_the_most_confused_pairs_are_the_largest_errors_first():
    assert most_confused_pairs(matrix_with_errors(200)) == [(7, 42, 5), (3, 9, 3), (150, 2, 1)]
    assert most_confused_pairs(matrix_with_errors(200), count=2) == [(7, 42, 5), (3, 9, 3)]
    assert most_confused_pairs(2 * np.eye(200, dtype=np.int64)) == []


def test_a_confusion_matrix_of_hundreds_of_classes_names_its_most_confused_pairs():
    figure = confusion_figure(matrix_with_errors(200), speakers(200), title="test")
    pairs_axes = [ax for ax in figure.axes if ax.get_title().startswith("the 3 most confused pairs")]
    assert len(pairs_axes) == 1 and pairs_axes[0].get_title().endswith("(9 of 9 errors)")
    names = [label.get_text() for label in pairs_axes[0].get_yticklabels()]
    assert names == ["speaker_0007 \u2192 speaker_0042 (5/7)", "speaker_0003 \u2192 speaker_0009 (3/5)",
                     "speaker_0150 \u2192 speaker_0002 (1/3)"]  # (clips / clips of the true class)


def test_a_confusion_matrix_whose_ticks_name_every_class_is_drawn_as_before():
    matrix = 2 * np.eye(MAX_TICK_LABELS, dtype=np.int64)
    matrix[7, 42] = 5
    figure = confusion_figure(matrix, speakers(MAX_TICK_LABELS))
    assert [ax.get_label() for ax in figure.axes] == ["", "<colorbar>"]  # the heat map and its colour bar


def single_label_report(count: int) -> dict:
    report = {name: {"precision": 0.9, "recall": 0.9, "f1-score": 0.9, "support": 4} for name in speakers(count)}
    report["speaker_0017"] = {"precision": 0.1, "recall": 0.1, "f1-score": 0.1, "support": 4}
    report["speaker_0042"] = {"precision": 0.2, "recall": 0.2, "f1-score": 0.2, "support": 4}
    report["speaker_0003"] = {"precision": None, "recall": None, "f1-score": None, "support": 0}  # not in the split
    return {**report, "accuracy": 0.9}


def test_a_folded_per_class_table_keeps_the_lowest_f1_classes_in_view():
    text = per_class_table(single_label_report(100), speakers(100))
    weakest, folded = text.split("<details>")
    lines = weakest.strip().splitlines()
    assert lines[0] == f"The {WEAKEST_SHOWN} classes with the lowest F1:"
    assert lines[4:6] == ["| speaker\\_0017 | 0.100 | 0.100 | 0.100 | 4 |",
                          "| speaker\\_0042 | 0.200 | 0.200 | 0.200 | 4 |"]
    assert lines[6] == "| speaker\\_0000 | 0.900 | 0.900 | 0.900 | 4 |"  # ties in id order; 0003 has no F1
    assert len(lines) == 4 + WEAKEST_SHOWN and "speaker\\_0003" not in weakest
    assert folded.count("\n| speaker") == 100  # every class is still in the folded table


def test_a_per_class_table_shown_open_has_no_lowest_f1_table():
    text = per_class_table(single_label_report(COLLAPSE_AFTER), speakers(COLLAPSE_AFTER))
    assert text.startswith("| label | precision | recall | F1 | clips |") and "lowest" not in text


def test_a_folded_multi_label_table_keeps_the_lowest_ap_labels_in_view():
    labels = [f"event_{i}" for i in range(60)]
    per_class = {label: {"ap": 0.5 + i / 200, "roc_auc": 0.7, "f1": 0.5, "precision": 0.5, "recall": 0.5,
                         "threshold": 0.4, "support": 3} for i, label in enumerate(labels)}
    per_class["event_33"]["ap"], per_class["event_0"]["ap"] = 0.05, None  # event_0: no positive in the split
    text = multi_label_per_class_table({"per_class": per_class}, labels, num_clips=30)
    weakest = text.split("<details>")[0].strip().splitlines()
    assert weakest[0] == f"The {WEAKEST_SHOWN} labels with the lowest AP:"
    assert weakest[4].startswith("| event\\_33 | 0.050 | 0.100 | 0.700 |") and weakest[5].startswith("| event\\_1 |")
    assert all("event\\_0 |" not in line for line in weakest)


def staged_results(tmp_path, labels: list[str], metrics: dict, report_name: str, report: dict, **config) -> str:
    """The Results section of the card `hfspeech stage` writes for a random tiny CNN with these test records."""
    import json

    from conftest import save_random_baseline
    from hfspeech.hub import stage_run

    run = save_random_baseline(tmp_path / "run", "cnn", labels, 0.02, conv_channels=[4, 8], n_mels=16, **config)
    (run / "metrics.json").write_text(json.dumps({**metrics, "num_train_clips": 40, "num_test_clips": 8}))
    (run / report_name).write_text(json.dumps(report))
    stage_run(run, tmp_path / "staged", repo_id="someone/model")
    card = (tmp_path / "staged" / "README.md").read_text()
    return card.split("## Results\n", 1)[1].split("\n## ", 1)[0].strip()


def test_a_card_says_which_classes_macro_f1_leaves_out(tmp_path):
    labels = ["yes", "no", "up", "down", "a|b"]
    report = {label: {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 2} for label in labels[:3]}
    report.update({label: {"precision": None, "recall": None, "f1-score": None, "support": 0} for label in labels[3:]})
    results = staged_results(tmp_path, labels, {"test_accuracy": 1.0, "test_macro_f1": 1.0},
                             "test_classification_report.json", {**report, "accuracy": 1.0})
    assert results.startswith("On the test split (8 clips): accuracy 1.000, macro-F1 1.000. 2 of the 5 classes have "
                              "no clip in the test split and were never predicted (down, a|b): they have no F1, and "
                              "macro-F1 is the mean over the other 3.\n")


def test_a_card_of_every_class_scored_adds_nothing_to_macro_f1(tmp_path):
    labels = ["yes", "no"]
    report = {label: {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 4} for label in labels}
    results = staged_results(tmp_path, labels, {"test_accuracy": 1.0, "test_macro_f1": 1.0},
                             "test_classification_report.json", {**report, "accuracy": 1.0})
    assert results.splitlines()[0] == "On the test split (8 clips): accuracy 1.000, macro-F1 1.000."


def test_a_multi_label_card_says_over_how_many_labels_map_is(tmp_path):
    labels = ["dog", "cat", "bird"]
    metrics = {"test_map_macro": 0.75, "test_map_micro": 0.7, "test_map_num_classes": 2, "test_roc_auc_macro": 0.8,
               "test_roc_auc_num_classes": 2, "test_micro_f1": 0.6, "test_macro_f1": 0.6, "test_subset_accuracy": 0.5}
    results = staged_results(tmp_path, labels, metrics, "test_multilabel_report.json", {"per_class": {}},
                             problem_type="multi_label_classification")
    assert results.startswith("On the test split (8 clips): mAP 0.750 (macro, over the 2 of 3 labels with a positive "
                              "in the split) and 0.700 (micro); ROC-AUC 0.800 (macro, over the 2 classes")
    metrics["test_map_num_classes"] = 3
    every = staged_results(tmp_path / "every", labels, metrics, "test_multilabel_report.json", {"per_class": {}},
                           problem_type="multi_label_classification")
    assert every.startswith("On the test split (8 clips): mAP 0.750 (macro) and 0.700 (micro);")


def thresholds_by_sklearn(scores: np.ndarray, references: np.ndarray) -> np.ndarray:
    """The per-class loop over sklearn's `precision_recall_curve` that `tune_thresholds` was, as the reference."""
    from sklearn.metrics import precision_recall_curve

    thresholds = np.full(scores.shape[1], 0.5)
    for c in np.flatnonzero(references.any(axis=0)):
        precision, recall, candidates = precision_recall_curve(references[:, c], scores[:, c])
        precision, recall = precision[: len(candidates)], recall[: len(candidates)]
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=precision + recall > 0)
        best = int(np.flatnonzero(f1 == f1.max())[-1])
        below = scores[:, c][scores[:, c] < candidates[best]]
        thresholds[c] = (candidates[best] + below.max()) / 2 if below.size else candidates[best]
    return thresholds


def test_thresholds_of_many_labels_at_once_are_those_of_sklearn_class_by_class(monkeypatch):
    from hfspeech.evaluation import per_class_scores
    from hfspeech.evaluation.thresholds import tune_thresholds

    rng = np.random.default_rng(0)
    references = rng.random((300, 200)) < rng.random(200) * 0.2  # rare to common labels
    references[:, 0], references[:, 1], references[:, 2] = False, True, np.arange(300) == 299  # none, all, one
    scores = np.round(1 / (1 + np.exp(-(2 * references + rng.normal(0, 1, references.shape) - 1))), 2)  # ties
    scores[:, 3] = 0.4  # every clip tied
    monkeypatch.setattr(per_class_scores, "BLOCK_ELEMENTS", 300 * 7)  # 7 classes a block: blocks meet
    tuned = tune_thresholds(scores, references)
    assert tuned.tolist() == thresholds_by_sklearn(scores, references).tolist() and tuned[0] == 0.5


def per_class_rows(count: int) -> dict:
    return {f"event_{i}": {"ap": (i % 10) / 10, "f1": None if i == 3 else 0.5, "support": 2} for i in range(count)}


def test_a_per_class_chart_of_thousands_of_labels_is_two_outlines_not_a_bar_each():
    from hfspeech.evaluation.report_plots import per_class_figure

    ax = per_class_figure(per_class_rows(2000)).axes[0]
    assert len(ax.patches) == 2  # was 4,000 bars, each under a pixel wide
    assert ax.patches[0].get_data().values.tolist() == [(i % 10) / 10 for i in range(2000)]
    assert ax.patches[1].get_data().values[3] == 0.0  # no F1: drawn at 0, as the bars did


def test_a_per_class_chart_that_names_every_label_still_draws_bars():
    from hfspeech.evaluation.report_plots import per_class_figure

    ax = per_class_figure(per_class_rows(MAX_TICK_LABELS)).axes[0]
    assert len(ax.patches) == 2 * MAX_TICK_LABELS and ax.get_xticklabels()[0].get_text() == "event_0\n(n=2)"


def test_a_label_that_looks_like_an_html_entity_is_shown_as_written():
    from hfspeech.hub.card_markdown import label_text, markdown_table

    assert label_text("&lt;unk&gt; R&B") == "\\&lt;unk\\&gt; R\\&B"  # was `<unk> R&B` once rendered
    assert markdown_table(("label",), [(label_text("`a|b`*<c>"),)]).splitlines()[2] == "| \\`a\\|b\\`\\*\\<c\\> |"
