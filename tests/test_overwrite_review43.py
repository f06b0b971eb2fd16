"""Review R2 of --overwrite_output_dir removing the earlier model (session 43): an `auto_map` naming code outside the
run removed it there; refusals that came after the fresh start (weights that do not load, distill --streaming) left
the user with nothing; an `hfspeech average` folder (no trainer record) kept its model passing for a new run's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import save_random_baseline, write_tone_folder
from hfspeech.training.run_folder import start_over
from test_overwrite42 import train


def fresh_start(folder: Path) -> None:
    start_over(SimpleNamespace(output_dir=str(folder), overwrite_output_dir=True, should_save=True,
                               resume_from_checkpoint=None))


def test_remote_code_outside_the_run_is_never_removed(tmp_path):
    run, linked = tmp_path / "run", tmp_path / "elsewhere"
    save_random_baseline(run, "cnn", ["a", "b"], 0.5)
    linked.mkdir()
    for path in (tmp_path / "victim.py", tmp_path / "abs_victim.py", linked / "mod.py", run / "modeling_x.py"):
        path.write_text("x = 1\n")
    (run / "hidden").symlink_to(linked)
    config = json.loads((run / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "../victim.Cfg", "AutoModel": f"{tmp_path / 'abs_victim'}.M",
                          "AutoFeatureExtractor": "hidden/mod.Fx", "AutoModelForAudioClassification": "modeling_x.M"}
    (run / "config.json").write_text(json.dumps(config))
    (run / "trainer_state.json").write_text("{}")
    fresh_start(run)
    assert all(path.is_file() for path in (tmp_path / "victim.py", tmp_path / "abs_victim.py", linked / "mod.py"))
    assert sorted(os.listdir(run)) == ["hidden"]  # the run's own module went with its model


def test_an_average_folder_is_a_run_whose_model_goes(tmp_path):
    folder = save_random_baseline(tmp_path / "avg", "cnn", ["a", "b"], 0.5)
    (folder / "training_clips.json").write_text("{}")  # `hfspeech average` writes no trainer record
    (folder / "training_hyperparameters.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    fresh_start(folder)
    assert sorted(os.listdir(folder)) == ["notes.txt"]


def test_a_staged_repo_is_not_taken_for_a_run(tmp_path):
    """`hfspeech stage` writes training_hyperparameters.json beside the model, and no training_clips.json."""
    folder = save_random_baseline(tmp_path / "staged", "cnn", ["a", "b"], 0.5)
    (folder / "training_hyperparameters.json").write_text("{}")
    before = sorted(os.listdir(folder))
    fresh_start(folder)
    assert sorted(os.listdir(folder)) == before


def test_a_start_that_does_not_load_leaves_the_earlier_run_whole(tmp_path):
    tones = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    run = tmp_path / "run"
    assert train(["--data_dir", str(tones)], run, "--max_steps", "2", "--per_device_train_batch_size", "4") == 0
    before = sorted(os.listdir(run))
    cut = save_random_baseline(tmp_path / "cut", "cnn", ["high", "low", "noise"], 0.5)
    (cut / "model.safetensors").write_bytes((cut / "model.safetensors").read_bytes()[:1000])
    assert train(["--data_dir", str(tones)], run, "--max_steps", "2", "--model_name_or_path", str(cut),
                 "--overwrite_output_dir") == 2
    assert sorted(os.listdir(run)) == before


def test_distill_streaming_is_refused_as_its_flags_are_read(tmp_path):
    from hfspeech.errors import UsageError
    from hfspeech.training.distill import parse_distill_args

    teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["a", "b"], 0.5)
    with pytest.raises(UsageError, match="does not work with --streaming"):
        parse_distill_args(["--teacher", str(teacher), "--data_dir", str(tmp_path), "--output_dir",
                            str(tmp_path / "student"), "--streaming", "--overwrite_output_dir"])


def test_a_flag_the_trainer_refuses_leaves_the_earlier_run_whole(tmp_path):
    """Review R4: --gradient_checkpointing on the CNN (refused as the Trainer is built), --freeze_base_model with
    augmentation (refused as the training views are made) and a distill teacher's weights cut short (refused as it is
    attached) each came after the fresh start had removed the earlier run."""
    tones = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    run = tmp_path / "run"
    assert train(["--data_dir", str(tones)], run, "--max_steps", "2", "--per_device_train_batch_size", "4") == 0
    before = sorted(os.listdir(run))
    assert train(["--data_dir", str(tones)], run, "--max_steps", "2", "--gradient_checkpointing", "True",
                 "--overwrite_output_dir") == 2
    assert sorted(os.listdir(run)) == before
