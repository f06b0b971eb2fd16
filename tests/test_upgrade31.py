"""Runs made by earlier hfspeech versions (upgrade audit, session 31): what cannot be checked is said, and
`hfspeech average`'s refusal shows the values that differ (and, for an old trimmed run, what to do)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfspeech.cli import main as cli
from hfspeech.data.clip_digests import TRAINING_CLIPS_FILE
from tests.conftest import save_random_baseline, write_tone_folder
from tests.test_averaging import save_cnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def test_averaging_an_old_trimmed_run_with_a_new_one_shows_the_values_and_the_way_out(tmp_path, capsys):
    """An earlier version's trimmed run has no `trim_silence_top_db`; the refusal only named the key."""
    old, new = tmp_path / "old", tmp_path / "new"
    save_cnn(old, 0)
    save_cnn(new, 1, trim_silence_top_db=40.0)
    assert cli(["average", str(old), str(new), "--output_dir", str(tmp_path / "soup")]) == 2
    err = capsys.readouterr().err
    assert f"trim_silence_top_db: absent in {old}, 40.0 in {new}" in err and err.count("\n") == 1, err
    assert f"if {old} was trained with --trim_silence" in err
    assert '"trim_silence_top_db": 40.0 to its config.json' in err
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "trim_silence_top_db": 40.0}))  # the way out it names
    assert cli(["average", str(old), str(new), "--output_dir", str(tmp_path / "soup")]) == 0


def test_averaging_refuses_other_differences_with_both_values(tmp_path, capsys):
    save_cnn(tmp_path / "a", 0)
    save_cnn(tmp_path / "b", 1, pooling="max")
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--output_dir", str(tmp_path / "soup")]) == 2
    err = capsys.readouterr().err
    assert f'pooling: "mean" in {tmp_path / "a"}, "max" in {tmp_path / "b"}' in err and "--trim_silence" not in err, err


@pytest.fixture
def old_run_and_its_clips(tmp_path) -> tuple[Path, Path]:
    """A model folder as runs before `training_clips.json` left it, and six tone clips of its labels."""
    run = save_random_baseline(tmp_path / "run", "cnn", ["high", "low", "noise"], 0.02, conv_channels=[4, 8], n_mels=16)
    return run, write_tone_folder(tmp_path / "clips", clips_per_class=2)


def _staged_card(run: Path, clips: Path, dest: Path) -> str:
    from hfspeech.hub.stage import stage_run

    stage_run(run, dest, repo_id="someone/run", eval_dir=str(clips))
    return (dest / "README.md").read_text()


def test_scores_of_a_run_without_its_clips_record_say_it_is_not_checked(old_run_and_its_clips, tmp_path):
    """stage --eval_dir of such a run showed "0.250 on 48 clips" with no word, though all 48 were its own."""
    run, clips = old_run_and_its_clips
    card = _staged_card(run, clips, tmp_path / "repo")
    assert "**Warning:** --eval\\_dir: whether these clips are ones the model was trained on is not checked" in card
    assert str(tmp_path) not in card  # the card is published: no path in the line


def test_a_run_with_its_clips_record_is_warned_as_before(old_run_and_its_clips, tmp_path):
    """The record's runs keep their warning (and its absence): only a missing record gets the new line."""
    from datasets import Dataset

    from hfspeech.data.clip_digests import clip_digests
    from hfspeech.inference.agreement import heard_clips_warning

    run, clips = old_run_and_its_clips
    paths = sorted(str(path) for path in clips.rglob("*.wav"))
    (run / TRAINING_CLIPS_FILE).write_text(json.dumps({"train": [], "validation": []}))
    assert heard_clips_warning(str(run), paths) is None
    assert "not checked" not in _staged_card(run, clips, tmp_path / "repo")
    heard = clip_digests(Dataset.from_dict({"audio": paths[:1]}))
    (run / TRAINING_CLIPS_FILE).write_text(json.dumps({"train": heard, "validation": []}))
    assert heard_clips_warning(str(run), paths).startswith("1 of 6 clips are clips the model was trained on")


def test_evaluate_of_a_model_without_its_clips_record_says_it_is_not_checked(tmp_path):
    """It said so at info level, which nothing prints: an old run's score on its own clips read as held out."""
    from hfspeech.evaluation.evaluate_model import _seen_clips
    from datasets import Dataset

    assert "is not checked" in _seen_clips(str(tmp_path), Dataset.from_dict({"audio": []}))[0]
