"""`hfspeech average`: runs of one model averaged into one (`training.averaging`), and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForAudioClassification

from hfspeech.cli import main as cli
from hfspeech.models.cnn import CNNAudioConfig, CNNAudioFeatureExtractor, CNNAudioForAudioClassification

LABELS = ["no", "yes"]


def save_cnn(folder: Path, seed: int, labels=LABELS, **config_values) -> CNNAudioForAudioClassification:
    """A small CNN with its own random weights and BatchNorm statistics, saved like a run."""
    torch.manual_seed(seed)
    config = CNNAudioConfig(conv_channels=(4, 8), n_mels=16, id2label=dict(enumerate(labels)),
                            label2id={label: i for i, label in enumerate(labels)}, **config_values)
    model = CNNAudioForAudioClassification(config).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.num_batches_tracked.fill_(seed + 10)
    model.save_pretrained(folder)
    CNNAudioFeatureExtractor(n_mels=16).save_pretrained(folder)
    return model


def test_average_of_runs_is_the_mean_of_their_weights(tmp_path):
    runs = [save_cnn(tmp_path / f"seed{seed}", seed) for seed in range(3)]
    assert cli(["average", *(str(tmp_path / f"seed{seed}") for seed in range(3)),
                "--output_dir", str(tmp_path / "soup")]) == 0
    soup = AutoModelForAudioClassification.from_pretrained(tmp_path / "soup")
    states = [run.state_dict() for run in runs]
    for name, tensor in soup.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, sum(state[name] for state in states) / 3)
        else:  # BatchNorm's step count: the runs' rounded mean (10, 11, 12)
            assert tensor.item() == 11, name
    assert (tmp_path / "soup" / "preprocessor_config.json").is_file()
    assert (tmp_path / "soup" / "torchscript").is_dir()  # a baseline's fast start, as after training


def test_the_average_carries_the_runs_records_into_its_model_card(tmp_path):
    from hfspeech.hub.stage import stage_run

    for seed in range(3):
        save_cnn(tmp_path / f"seed{seed}", seed)
        records = {"learning_rate": 0.01, "seed": seed}, {"kept": {"train": 90, "test": 10 + (seed == 2)}}
        for name, record in zip(("training_hyperparameters.json", "data_report.json"), records):
            (tmp_path / f"seed{seed}" / name).write_text(json.dumps(record))
    assert cli(["average", *(str(tmp_path / f"seed{seed}") for seed in range(3)),
                "--output_dir", str(tmp_path / "soup")]) == 0
    assert json.loads((tmp_path / "soup" / "training_hyperparameters.json").read_text()) == {
        "learning_rate": 0.01, "seed": [0, 1, 2], "averaged_runs": 3}
    assert not (tmp_path / "soup" / "data_report.json").exists()  # seed 2 trained on other data
    assert cli(["average", str(tmp_path / "seed0"), str(tmp_path / "seed1"), "--output_dir", str(tmp_path / "two")]) == 0
    assert json.loads((tmp_path / "two" / "data_report.json").read_text()) == {"kept": {"train": 90, "test": 10}}
    stage_run(tmp_path / "soup", tmp_path / "repo", repo_id="someone/soup", eval_dir=None)
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "| seed | [0, 1, 2] |" in card and "| averaged_runs | 3 |" in card


def test_average_refuses_different_models_and_an_occupied_folder(tmp_path, capsys):
    save_cnn(tmp_path / "a", 0)
    save_cnn(tmp_path / "b", 1, labels=["no", "maybe"])
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--output_dir", str(tmp_path / "out")]) == 2
    assert "b: not the same model as" in capsys.readouterr().err  # names the run and what differs
    assert not (tmp_path / "out").exists()
    save_cnn(tmp_path / "c", 2)
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "c"), "--output_dir", str(tmp_path / "c")]) == 2
    assert f"--output_dir {tmp_path / 'c'}: holds other files (config.json, " in capsys.readouterr().err
    (tmp_path / "file").write_text("mine")
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "c"), "--output_dir", str(tmp_path / "file")]) == 2
    assert "file: is a file, not a folder" in capsys.readouterr().err and (tmp_path / "file").read_text() == "mine"
    assert cli(["average", str(tmp_path / "a"), "--output_dir", str(tmp_path / "out")]) == 2
    assert "two runs or more" in capsys.readouterr().err
    (tmp_path / "c" / "data_report.json").write_text("{")
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "c"), "--output_dir", str(tmp_path / "out")]) == 2
    assert "data_report.json: corrupt, not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    assert cli(["average", str(tmp_path / "a"), str(tmp_path / "empty"), "--output_dir", str(tmp_path / "out")]) == 2
    assert "empty: not a model folder (no config.json)" in capsys.readouterr().err


def test_average_refuses_a_run_named_twice(tmp_path, capsys):
    """`average a a` (or `a ./a/`) averaged a model with itself and called it the average of two runs."""
    save_cnn(tmp_path / "a", 0)
    save_cnn(tmp_path / "b", 1)
    for twice in (str(tmp_path / "a"), f"{tmp_path}/./a/"):
        assert cli(["average", str(tmp_path / "a"), str(tmp_path / "b"), twice, "--output_dir",
                    str(tmp_path / "out")]) == 2
        assert capsys.readouterr().err.strip() == (f"error: {twice}: the same folder as {tmp_path / 'a'}; "
                                                   "give each run once")
        assert not (tmp_path / "out").exists()


def test_multi_label_runs_average_their_thresholds(tmp_path):
    for seed, thresholds in enumerate(({"no": 0.3, "yes": 0.6}, {"no": 0.5, "yes": 0.2})):
        save_cnn(tmp_path / f"seed{seed}", seed, problem_type="multi_label_classification",
                 label_thresholds=thresholds)
    assert cli(["average", str(tmp_path / "seed0"), str(tmp_path / "seed1"), "--output_dir", str(tmp_path / "soup")]) == 0
    soup = AutoModelForAudioClassification.from_pretrained(tmp_path / "soup")
    assert soup.config.label_thresholds == pytest.approx({"no": 0.4, "yes": 0.4})


def test_a_run_without_thresholds_counts_with_its_default(tmp_path):
    """A run trained with --tune_thresholds False (it used 0.5) was left out of the mean; a label one run's
    thresholds lack raised a KeyError."""
    for seed, thresholds in enumerate(({"no": 0.3}, None)):
        save_cnn(tmp_path / f"seed{seed}", seed, problem_type="multi_label_classification",
                 **({"label_thresholds": thresholds} if thresholds else {}))
    assert cli(["average", str(tmp_path / "seed0"), str(tmp_path / "seed1"), "--output_dir", str(tmp_path / "soup")]) == 0
    soup = AutoModelForAudioClassification.from_pretrained(tmp_path / "soup")
    assert soup.config.label_thresholds == pytest.approx({"no": 0.4, "yes": 0.5})
