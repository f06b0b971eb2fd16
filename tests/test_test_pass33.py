"""A run's test numbers measured as `hfspeech evaluate` measures them (whole clips, windows of the crop, mean), where
the test clips outlast the crop: the run said 0.441 (one centre crop per clip) and evaluate 0.588 on the same 34
utterances, and the model card showed both without a word."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import TINY_CNN, synth_clip, write_tone_folder

RATE = 16000
# Each test clip: 2 s of its class, but for its centre half-second, which is another class's sound.
CENTRE_OF = {"low": "high", "high": "noise", "noise": "low"}


def write_test_clips(root: Path, per_class: int = 3) -> None:
    """2-s clips whose centre 0.5 s (the centre crop a 0.5-s run scores) is another class: windows of 0.5 s score
    the clip's own class in most of them, the centre crop the other one."""
    rng = np.random.default_rng(1)
    for label, centre in CENTRE_OF.items():
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            parts = [synth_clip(label, rng, RATE, 0.75), synth_clip(centre, rng, RATE, 0.5),
                     synth_clip(label, rng, RATE, 0.75)]
            sf.write(root / label / f"{label}_{i}.wav", np.concatenate(parts), RATE)


@pytest.fixture(scope="module")
def long_test_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder: train/ of 0.5-s tones, test/ of 2-s clips; the run trained on it at a 0.5-s crop)."""
    from hfspeech.training.run import main

    data = tmp_path_factory.mktemp("long_test")
    write_tone_folder(data / "train", clips_per_class=12, rates=(RATE,))
    write_test_clips(data / "test")
    run = data.parent / f"{data.name}-run"
    main(["--data_dir", str(data), "--output_dir", str(run), "--model_type", "cnn", "--config_overrides", TINY_CNN,
          "--num_train_epochs", "4", "--learning_rate", "1e-2", "--per_device_train_batch_size", "8",
          "--max_length_seconds", "0.5", "--seed", "0", "--save_strategy", "no", "--eval_strategy", "no",
          "--report_to", "none"])
    return data, run


def test_a_runs_test_numbers_are_evaluates_on_clips_longer_than_the_crop(long_test_run, tmp_path):
    from hfspeech.cli import main as cli

    data, run = long_test_run
    assert cli(["evaluate", "--model", str(run), "--data_dir", str(data), "--output_dir", str(tmp_path / "e")]) == 0
    evaluated = json.loads((tmp_path / "e" / "test_metrics.json").read_text())
    recorded = json.loads((run / "metrics.json").read_text())
    assert evaluated["num_clips"] == 9
    assert (recorded["test_accuracy"], recorded["test_macro_f1"]) == (evaluated["accuracy"], evaluated["macro_f1"])
    assert recorded["test_scored_as"] == "whole clips, windows of 0.5 s, mean"
    confusion = json.loads((run / "test_confusion_matrix.json").read_text())["matrix"]
    assert confusion == json.loads((tmp_path / "e" / "test_confusion_matrix.json").read_text())["matrix"]


def test_the_long_clip_note_counts_the_test_clips_and_suggests_a_length_that_covers_them(long_test_run):
    """The note counted training clips alone (none here: they are as long as the crop), said "evaluation the centre",
    and suggested no length; the 2-s test clips went unmentioned."""
    _, run = long_test_run
    notes = json.loads((run / "data_report.json").read_text())["notes"]
    note = next(note for note in notes if "longer than the 0.5-s crop" in note)
    assert note.startswith("0 of ") and "test 9 of 9), the longest 2 s" in note, note
    assert note.endswith("consider --max_length_seconds 2 or --trim_silence") and "evaluation the centre" not in note


def stage_card(run: Path, dest: Path, clips: Path) -> str:
    from hfspeech.hub import stage_run

    stage_run(run, dest, repo_id="someone/model", eval_dir=clips)
    return (dest / "README.md").read_text()


def test_the_card_says_when_its_results_and_variants_were_scored_differently(long_test_run, tmp_path):
    """A run recorded before `test_scored_as` scored one centre crop per clip; the variants' row whole clips in
    windows. Now a run's Results are scored as the variants are, and the card says nothing more."""
    import shutil

    data, run = long_test_run
    card = stage_card(run, tmp_path / "repo", data / "test")
    assert "accuracy 1.000" in card and "1.000 on 9 clips" in card and "**Note:** these Results" not in card
    earlier = tmp_path / "earlier-run"
    shutil.copytree(run, earlier)
    metrics = json.loads((earlier / "metrics.json").read_text())
    del metrics["test_scored_as"]
    (earlier / "metrics.json").write_text(json.dumps(metrics))
    card = stage_card(earlier, tmp_path / "earlier-repo", data / "test")
    assert ("**Note:** these Results score one centre crop of 0.5 s per clip (the run's test pass); the exported "
            "variants' accuracy below scores whole clips in 0.5-s windows") in card


def test_a_multi_label_runs_test_numbers_are_evaluates_at_its_tuned_thresholds(tmp_path):
    """Events of 1 s to train on, 2-s clips to test on, a 1-s crop: the run's mAP, F1 and subset accuracy are
    `hfspeech evaluate`'s, at the thresholds the run tuned and saved."""
    from hfspeech.cli import main as cli
    from hfspeech.synthetic.events import generate_event_dataset
    from hfspeech.training.run import main

    train = generate_event_dataset(tmp_path / "train", num_clips=120, seed=0)
    test = generate_event_dataset(tmp_path / "test", num_clips=30, clip_seconds=2.0, seed=1)
    main(["--train_file", str(train / "labels.csv"), "--test_file", str(test / "labels.csv"),
          "--problem_type", "multi_label_classification", "--output_dir", str(tmp_path / "run"),
          "--config_overrides", TINY_CNN, "--num_train_epochs", "3", "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "16", "--seed", "0", "--max_length_seconds", "1",
          "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none"])
    assert cli(["evaluate", "--model", str(tmp_path / "run"), "--test_file", str(test / "labels.csv"),
                "--output_dir", str(tmp_path / "e")]) == 0
    evaluated = json.loads((tmp_path / "e" / "test_metrics.json").read_text())
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert recorded["test_scored_as"] == "whole clips, windows of 1 s, mean" and evaluated["num_clips"] == 30
    for name in ("map_macro", "micro_f1", "macro_f1", "subset_accuracy"):
        assert recorded[f"test_{name}"] == pytest.approx(evaluated[name], abs=1e-9), name
    assert recorded["label_thresholds"] == pytest.approx(evaluated["label_thresholds"])


def test_a_trimmed_runs_rescoring_is_quiet_about_a_trim_it_did_not_ask_for(long_test_run, tmp_path, capfd):
    """The model trims each clip itself (trained with --trim_silence): the re-scoring passed the run's trim on, and
    evaluate's code said on stderr it was "not applied" in every such run (review R2)."""
    from hfspeech.training.run import main

    data, _ = long_test_run
    main(["--data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--model_type", "cnn", "--config_overrides",
          TINY_CNN, "--num_train_epochs", "1", "--max_length_seconds", "0.5", "--trim_silence", "--save_strategy",
          "no", "--eval_strategy", "no", "--report_to", "none"])
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert recorded["test_scored_as"] == "whole clips, windows of 0.5 s, mean", recorded
    assert "is not applied" not in capfd.readouterr().err
