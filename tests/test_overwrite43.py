"""`--overwrite_output_dir` removes the earlier run's model too (`training.earlier_model`), so a new run stopped before
its final save leaves its own records and checkpoint, and no model, never the earlier one passing for its own.

Before: the earlier model stayed "until this run's replaces it". Killed after its first checkpoint, a 2-label run over
a 3-label one left the 3-label weights beside its run_inputs.json: `hfspeech stage RUN` published them (a card with
"one of 3 labels"), `predict RUN` answered with the earlier labels and `evaluate --model RUN` scored them, exit 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers

from conftest import TINY_CNN, write_tone_folder
from hfspeech.cli import main

MODEL = ["config.json", "model.safetensors", "preprocessor_config.json"]


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("tones") / "data", clips_per_class=6, rates=(16000,))


@pytest.fixture(scope="module")
def two_labels(tones, tmp_path_factory) -> Path:
    """The tones of two of their three classes: a run on them has other labels than one on all of them."""
    folder = tmp_path_factory.mktemp("two") / "data"
    for label in ("high", "low"):
        shutil.copytree(tones / label, folder / label)
    return folder


def train(data: Path, output_dir: Path, *flags: str) -> int:
    return main(["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
                 "--config_overrides", TINY_CNN, "--learning_rate", "1e-2", "--max_length_seconds", "0.5",
                 "--seed", "0", "--dataloader_num_workers", "0", "--per_device_train_batch_size", "4",
                 "--save_strategy", "steps", "--save_steps", "1", "--eval_strategy", "steps", "--eval_steps", "1",
                 *flags])


def labels(run: Path) -> list[str]:
    return list(json.loads((run / "config.json").read_text())["id2label"].values())


def stopped_after_its_first_checkpoint(monkeypatch):
    """Ctrl-C as the first checkpoint is complete (before the final save)."""
    save_checkpoint = transformers.Trainer._save_checkpoint

    def save_then_stop(self, *args, **kwargs):
        save_checkpoint(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(transformers.Trainer, "_save_checkpoint", save_then_stop)


def test_a_run_stopped_before_its_final_save_leaves_no_earlier_model_and_resumes_to_its_own(
        tones, two_labels, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert train(tones, run, "--max_steps", "2") == 0
    assert labels(run) == ["high", "low", "noise"]
    with monkeypatch.context() as patched:
        stopped_after_its_first_checkpoint(patched)
        assert train(two_labels, run, "--max_steps", "2", "--overwrite_output_dir") != 0
    assert "checkpoint-1" in {path.name for path in run.iterdir()} and (run / "run_inputs.json").is_file()
    assert not [name for name in MODEL if (run / name).exists()]  # was the earlier 3-label model, used as this run's
    capsys.readouterr()
    assert main(["predict", str(run), str(next((tones / "noise").iterdir()))]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {run}: not a model folder (no config.json); the run stopped before saving its model? its last "
        f"checkpoint is {run / 'checkpoint-1'} (resume with --resume_from_checkpoint)")
    assert train(two_labels, run, "--max_steps", "2", "--resume_from_checkpoint", str(run / "checkpoint-1")) == 0
    assert labels(run) == ["high", "low"]
    assert json.loads((run / "run_inputs.json").read_text())["data"]["data_dir"] == str(two_labels)


def test_a_run_that_loads_the_folders_own_model_is_refused_before_anything_goes(tones, tmp_path, capsys):
    """`--model_name_or_path RUN --output_dir RUN --overwrite_output_dir`: its weights would be removed before they
    were loaded; kept, they would pass for this run's if it were stopped. Before: it ran (exit 0)."""
    run = tmp_path / "run"
    assert train(tones, run, "--max_steps", "2") == 0
    before = sorted(path.name for path in run.iterdir())
    capsys.readouterr()
    assert main(["train", "--data_dir", str(tones), "--output_dir", str(run), "--model_name_or_path", str(run),
                 "--max_length_seconds", "0.5", "--max_steps", "1", "--dataloader_num_workers", "0",
                 "--overwrite_output_dir"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --output_dir {run}: --overwrite_output_dir would remove the earlier run's model, which "
        f"--model_name_or_path {run} is loaded from; copy it elsewhere first, or give another --output_dir")
    assert sorted(path.name for path in run.iterdir()) == before


def earlier_run_with_remote_code(run: Path) -> None:
    """What a run started from a repo with remote code saves: the code beside the weights, named by `auto_map`."""
    from hfspeech.hub.remote_code import write_remote_code
    from hfspeech.models.cnn import CNNAudioConfig, CNNAudioFeatureExtractor, CNNAudioForAudioClassification

    run.mkdir()
    auto_map = write_remote_code(CNNAudioConfig, CNNAudioForAudioClassification, CNNAudioFeatureExtractor, run)
    (run / "config.json").write_text(json.dumps({"model_type": "hfspeech-cnn", "auto_map": auto_map["config"]}))
    (run / "preprocessor_config.json").write_text(json.dumps({"auto_map": auto_map["feature_extractor"]}))
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "trainer_state.json").write_text("{}")


def start_over(run: Path) -> None:
    from hfspeech.training.run_folder import start_over as fresh_start

    fresh_start(SimpleNamespace(output_dir=str(run), overwrite_output_dir=True, should_save=True,
                                resume_from_checkpoint=None))


def test_the_earlier_models_remote_code_goes_and_the_users_files_and_links_stay(tmp_path):
    run = tmp_path / "run"
    earlier_run_with_remote_code(run)
    code = sorted(path.name for path in run.glob("*.py"))
    assert len(code) > 3  # the entry modules and those they import
    (run / "plot_curves.py").write_text("# mine\n")
    (tmp_path / "weights.bin").write_bytes(b"mine")
    (run / "pytorch_model.bin").symlink_to(tmp_path / "weights.bin")
    start_over(run)
    assert sorted(path.name for path in run.iterdir()) == ["plot_curves.py", "pytorch_model.bin"]
    assert (tmp_path / "weights.bin").read_bytes() == b"mine"
    # A folder with no trace of a run: its model is not known to be hfspeech's, and stays.
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in MODEL:
        (mine / name).write_text("{}")
    start_over(mine)
    assert sorted(path.name for path in mine.iterdir()) == MODEL
