"""`hfspeech evaluate`: warns when it scores clips the model was trained on (`data.clip_digests`); windows as predict."""

import json
import shutil
from pathlib import Path

from conftest import write_tone_folder
from hfspeech.cli import main as cli
from hfspeech.data.clip_digests import TRAINING_CLIPS_FILE
from hfspeech.hub.stage import stage_run


def _evaluate(model: Path, data: Path, out: Path) -> dict:
    assert cli(["evaluate", "--model", str(model), "--data_dir", str(data), "--output_dir", str(out)]) == 0
    return json.loads(next(out.glob("*_metrics.json")).read_text())


def test_evaluating_a_model_on_its_own_training_data_says_how_many_clips_it_trained_on(trained_cnn, tone_folder,
                                                                                         tmp_path):
    run = json.loads((trained_cnn / "metrics.json").read_text())
    metrics = _evaluate(trained_cnn, tone_folder, tmp_path / "own")
    [warning] = metrics["data_warnings"]
    seen = run["num_train_clips"] + run["num_validation_clips"]  # the test clips were never trained on
    assert warning.startswith(f"{seen} of {metrics['num_clips']} clips are clips the model was trained on")
    assert f"{run['num_train_clips']} in its train split" in warning
    assert warning in json.loads((tmp_path / "own" / "data_report.json").read_text())["warnings"]


def test_copies_under_other_names_are_found_and_new_recordings_are_not(trained_cnn, tone_folder, tmp_path):
    renamed = tmp_path / "renamed"
    for file in sorted(tone_folder.rglob("*.wav")):
        target = renamed / file.parent.name / f"copy_{file.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    own = _evaluate(trained_cnn, tone_folder, tmp_path / "own")
    copied = _evaluate(trained_cnn, renamed, tmp_path / "copied")
    counts = own["data_warnings"][0].split("; ")[0]  # "N of M clips are ... (X in its train split, Y in ..."
    assert copied["data_warnings"][0].startswith(counts + "; ") and "copy_" in copied["data_warnings"][0]
    fresh = write_tone_folder(tmp_path / "fresh", clips_per_class=3, seed=123)
    assert "data_warnings" not in _evaluate(trained_cnn, fresh, tmp_path / "fresh_eval")


def test_a_checkpoint_of_the_run_is_checked_against_the_run_record(trained_cnn, tone_folder, tmp_path):
    checkpoint = next(trained_cnn.glob("checkpoint-*"))
    assert not (checkpoint / TRAINING_CLIPS_FILE).exists()
    assert "data_warnings" in _evaluate(checkpoint, tone_folder, tmp_path / "checkpoint")


def test_the_record_holds_digests_not_where_the_data_lives_and_is_not_published(trained_cnn, tone_folder, tmp_path):
    record = (trained_cnn / TRAINING_CLIPS_FILE).read_text()
    assert str(tone_folder) not in record and ".wav" not in record
    run = json.loads((trained_cnn / "metrics.json").read_text())
    assert len(json.loads(record)["train"]) == run["num_train_clips"]
    staged = stage_run(trained_cnn, tmp_path / "staged")
    assert TRAINING_CLIPS_FILE not in {path.name for path in staged}


def test_an_average_of_runs_carries_the_union_of_their_records(trained_cnn, tone_folder, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(trained_cnn, tmp_path / name, ignore=shutil.ignore_patterns("checkpoint-*"))
    record = json.loads((trained_cnn / TRAINING_CLIPS_FILE).read_text())
    (tmp_path / "b" / TRAINING_CLIPS_FILE).write_text(json.dumps({**record, "train": ["0" * 16]}))
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--output_dir", str(tmp_path / "soup")]) == 0
    merged = json.loads((tmp_path / "soup" / TRAINING_CLIPS_FILE).read_text())
    assert merged["train"] == sorted(record["train"] + ["0" * 16])
    assert "data_warnings" in _evaluate(tmp_path / "soup", tone_folder, tmp_path / "soup_eval")
    (tmp_path / "b" / TRAINING_CLIPS_FILE).unlink()  # one run without a record: the average cannot vouch
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--output_dir", str(tmp_path / "soup2")]) == 0
    assert not (tmp_path / "soup2" / TRAINING_CLIPS_FILE).exists()


def test_evaluate_refuses_a_hop_longer_than_the_window_as_predict_does(trained_cnn, tone_folder, tmp_path, capsys):
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir",
                str(tmp_path / "gaps"), "--window_seconds", "0.2", "--hop_seconds", "0.3"]) == 2
    assert "--hop_seconds 0.3 is longer than the window (0.2 s" in capsys.readouterr().err
