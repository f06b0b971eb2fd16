"""Session 31, multi-label audit: export's int8 gate compares label decisions (not top-1 against folder names),
a class is not tuned on one or two validation positives, and `stream --threshold` says when the model's own
per-label thresholds take its place."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from hfspeech.evaluation.thresholds import tune_thresholds
from hfspeech.training.multilabel import tune_label_thresholds
from tests.conftest import TINY_CNN, run_cli_output, save_random_baseline, write_tone_folder
from tests.test_int8_gate import with_activation_outlier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
LABELS = ["alarm", "dog", "siren"]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    """A manifest-style folder, `audio/*.wav`: its one folder name is no label set."""
    root = write_tone_folder(tmp_path_factory.mktemp("held_out"), clips_per_class=6, rates=(16000,), seed=31)
    (root / "audio").mkdir()
    for clip in sorted(root.glob("*/*.wav")):
        if clip.parent.name != "audio":
            shutil.move(clip, root / "audio" / clip.name)
    return root


def multi_label_model(folder: Path, clips: Path) -> Path:
    """A random multi-label CNN whose thresholds sit in the middle of each label's widest gap between fp32 scores
    on `clips`, so that int8's rounding alone flips no decision while a broken int8 model flips many."""
    from hfspeech.inference.classifier import AudioClassifier

    save_random_baseline(folder, "cnn", LABELS, 0.5, problem_type="multi_label_classification", **json.loads(TINY_CNN))
    classifier = AudioClassifier.from_pretrained(str(folder))
    scores = np.stack([classifier.score_file(str(path)).scores for path in sorted(clips.glob("*/*.wav"))])
    thresholds = {}
    for label, column in zip(LABELS, np.sort(scores, axis=0).T):
        inner = column[2:-1]  # at least two clips on each side
        widest = int(np.argmax(np.diff(inner)))
        thresholds[label] = float((inner[widest] + inner[widest + 1]) / 2)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "label_thresholds": thresholds}))
    return folder


def test_multi_label_int8_gate_reads_any_folder_and_compares_label_decisions(held_out, tmp_path, capsys):
    """It stopped with "label 'audio' (its folder) is not one of the model's labels"."""
    model = multi_label_model(tmp_path / "model", held_out)
    out = tmp_path / "onnx"
    code, printed, err = run_cli_output(["export", str(model), "--quantize", "int8", "--eval_dir", str(held_out),
                                         "--output", str(out)], capsys)
    assert code == 0, err
    assert "18 clips x 3 labels at the model's thresholds: 0 of the " in printed
    assert " decisions active in either model changed (0.00%)" in printed
    record = json.loads((out / "int8_check.json").read_text())
    assert record["changed_decisions"] == 0 and record["num_labels"] == 3 and record["passed"] is True
    assert record["active_decisions"] >= record["reference_active"] > 0
    assert record["max_changed_active_percent"] == 1.0 and (out / "model_quantized.onnx").is_file()


def test_multi_label_int8_that_changes_decisions_is_refused_unless_forced(held_out, tmp_path, capsys):
    """Top-1 against one folder name, thresholds ignored: the gate passed or failed such a model by chance."""
    model = with_activation_outlier(multi_label_model(tmp_path / "model", held_out), tmp_path / "outlier")
    out = tmp_path / "onnx"
    args = ["export", str(model), "--quantize", "int8", "--eval_dir", str(held_out), "--output", str(out)]
    code, _, err = run_cli_output(args, capsys)
    assert code == 2 and "% of the label decisions active in either model (more than 1%) on 18 clips x 3 labels" \
        in err, err
    assert "the file was deleted" in err and not (out / "model_quantized.onnx").exists()
    code, printed, err = run_cli_output(args + ["--force"], capsys)
    record = json.loads((out / "int8_check.json").read_text())
    assert code == 0 and record["kept_by_force"] is True and record["changed_active_percent"] > 1.0
    assert record["changed_clips"] >= 1
    assert record["changed_active_percent"] == pytest.approx(
        100 * record["changed_decisions"] / record["active_decisions"])


def test_the_single_label_gate_still_names_an_unknown_folder_label(held_out, tmp_path, capsys):
    model = save_random_baseline(tmp_path / "model", "cnn", LABELS, 0.5, **json.loads(TINY_CNN))
    code, _, err = run_cli_output(["export", str(model), "--quantize", "int8", "--eval_dir", str(held_out),
                                   "--output", str(tmp_path / "onnx")], capsys)
    assert code == 2 and "label 'audio' (its folder) is not one of the model's labels" in err


# --- thresholds are not tuned on one or two validation positives --------------------------------------------------


def _trainer_predicting(scores: np.ndarray, references: np.ndarray):
    logits = np.log(scores / (1 - scores))
    prediction = SimpleNamespace(predictions=logits, label_ids=references)
    return SimpleNamespace(predict=lambda *args, **kwargs: prediction,
                           model=SimpleNamespace(config=SimpleNamespace(label_thresholds=None)))


def test_a_class_with_fewer_than_three_validation_positives_keeps_the_default_threshold(caplog):
    """The audit's `alarm`: one positive scoring 0.161 made its threshold 0.161."""
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.05, 0.95, (20, 3))
    references = np.zeros((20, 3))
    references[0, 0] = 1  # alarm: one positive
    references[:2, 1] = 1  # dog: two
    references[:6, 2] = 1  # siren: six
    scores[0, 0] = 0.161
    with caplog.at_level(logging.INFO, logger="hfspeech.train"):
        thresholds = tune_label_thresholds(_trainer_predicting(scores, references), object(), LABELS)
    assert thresholds["alarm"] == thresholds["dog"] == 0.5
    tuned_alone = tune_thresholds(scores, references)[2]  # a class with enough positives: the same cut as before
    assert thresholds["siren"] == pytest.approx(tuned_alone, abs=1e-6) and thresholds["siren"] != 0.5
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "fewer than 3 positives in validation for 2 class(es) (alarm: 1, dog: 2)" in warning


# --- stream --threshold and the model's own thresholds ------------------------------------------------------------


def test_stream_says_when_its_threshold_gives_way_to_the_models_label_thresholds(tmp_path, capsys):
    model = save_random_baseline(tmp_path / "model", "cnn", LABELS, 0.5, problem_type="multi_label_classification",
                                 **json.loads(TINY_CNN))
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "label_thresholds": {"alarm": 0.17, "dog": 0.4}}))
    sf.write(tmp_path / "live.wav", np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32), 16000)
    base = ["stream", str(model), "--follow", str(tmp_path / "live.wav"), "--idle_timeout", "0"]
    code, _, err = run_cli_output(base + ["--threshold", "0.9"], capsys)
    assert code == 0 and err.count("\n") == 1, err
    assert err.startswith("warning: --threshold 0.9 is not used for the 2 label(s) with a threshold in the model's "
                          "config.json (label_thresholds: alarm: 0.17, dog: 0.4); it applies to the 1 other label(s)")
    code, _, err = run_cli_output(base, capsys)  # not given: nothing to say
    assert code == 0 and "--threshold" not in err, err


def test_a_staged_multi_label_int8_kept_by_force_says_how_many_decisions_changed(tmp_path: Path):
    """A multi-label check has no accuracy: the card's warning read "loses n/a accuracy points (more than n/a)"."""
    from hfspeech.hub.card_training import variant_warnings

    (tmp_path / "onnx").mkdir()
    record = {"passed": False, "kept_by_force": True, "num_clips": 18, "changed_decisions": 24,
              "active_decisions": 54, "changed_active_percent": 44.44, "max_changed_active_percent": 1.0}
    (tmp_path / "onnx" / "int8_check.json").write_text(json.dumps(record))
    [warning] = variant_warnings(tmp_path, [], True)
    assert "changes 44.44% of its label decisions active in either model (more than 1.00% allowed) on 18 clips" \
        in warning


# --- the gate's measure: changes against the decisions active in either model ------------------------------------


def label_sets(*rows: range) -> list[frozenset[str]]:
    return [frozenset(f"label{i}" for i in row) for row in rows]


@pytest.mark.parametrize("num_labels", [6, 50, 527])
def test_the_same_changed_decisions_are_refused_however_many_labels_never_fire(num_labels):
    """docs/export.md's probe: 5 decisions changed on 5 of 20 clips of 6 labels. Counted against clips x labels
    the same changes were 4.17% of 6 labels (refused) and 0.5% of 50 (passed); here every decision of the 6 is
    active in the reference, the least they can weigh against those active in either model."""
    from hfspeech.inference.agreement import DecisionComparison

    expected = label_sets(*[range(6)] * 20)
    got = label_sets(*[range(5)] * 5, *[range(6)] * 15)
    comparison = DecisionComparison.of_sets(expected, got, num_labels)
    assert not comparison.passes(1.0)
    assert (comparison.changed_decisions, comparison.active_decisions, comparison.changed_clips) == (5, 120, 5)
    assert comparison.changed_active_percent == pytest.approx(100 * 5 / 120)


def test_many_labels_with_every_clips_set_changed_are_refused():
    """527 labels, 100 decisions changed, every clip's active set changed: 0.95% of clips x labels passed."""
    from hfspeech.inference.agreement import DecisionComparison

    comparison = DecisionComparison.of_sets(label_sets(*[range(10)] * 20), label_sets(*[range(5)] * 20), 527)
    assert (comparison.changed_decisions, comparison.changed_clips) == (100, 20) and not comparison.passes(1.0)
    assert comparison.changed_active_percent == 50.0
    assert "100 of the 200 decisions active in either model changed (50.00%)" in comparison.refusal(1.0)


def test_the_measure_at_its_edges():
    """Nothing active in either model is nothing changed (0%, not a division by zero); 1 change in 100 active
    decisions is exactly the inclusive 1% limit."""
    from hfspeech.inference.agreement import DecisionComparison

    silent = DecisionComparison.of_sets(label_sets(range(0), range(0)), label_sets(range(0), range(0)), 6)
    assert silent.changed_active_percent == 0.0 and silent.passes(0.0)
    one_in_100 = DecisionComparison.of_sets(label_sets(*[range(5)] * 20), label_sets(range(4), *[range(5)] * 19), 6)
    assert one_in_100.changed_active_percent == 1.0 and one_in_100.passes(1.0) and not one_in_100.passes(0.99)
