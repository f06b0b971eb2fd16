"""The recipe end to end: outputs, learning, resuming, imbalance remedies, accelerate, real recordings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, TrainingArguments

from hfspeech.evaluation.metrics import ClassificationMetrics
from hfspeech.training.class_weights import inverse_frequency_weights
from hfspeech.training.run import main
from hfspeech.training.trainer import AudioClassificationTrainer
from tests.conftest import TINY_CNN, TONE_CLASSES

REPO = Path(__file__).resolve().parents[1]
TINY_LSTM = json.dumps({"lstm_hidden_size": 8, "num_lstm_layers": 1, "n_mels": 16, "n_mfcc": 13})


def epoch_losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_recipe_writes_every_output_and_learns(trained_cnn):
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json",
                 "data_report.json", "test_confusion_matrix.json", "test_confusion_matrix.png",
                 "test_classification_report.json"):
        assert (trained_cnn / name).is_file(), name
    losses = epoch_losses(trained_cnn)
    assert losses[-1] < 0.7 * losses[0], losses
    metrics = json.loads((trained_cnn / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8, metrics  # chance is 1/3
    matrix = json.loads((trained_cnn / "test_confusion_matrix.json").read_text())
    assert matrix["labels"] == metrics["labels"] == sorted(TONE_CLASSES)
    assert sum(map(sum, matrix["matrix"])) == metrics["num_test_clips"]
    correct = sum(matrix["matrix"][i][i] for i in range(3))
    assert correct / metrics["num_test_clips"] == pytest.approx(metrics["test_accuracy"])


def test_saved_run_reloads_with_the_auto_classes(trained_cnn):
    model = AutoModelForAudioClassification.from_pretrained(trained_cnn).eval()
    extractor = AutoFeatureExtractor.from_pretrained(trained_cnn)
    assert model.config.id2label == {0: "high", 1: "low", 2: "noise"}
    tone = 0.5 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000).astype(np.float32)
    with torch.no_grad():
        logits = model(**extractor(tone, sampling_rate=16000, return_tensors="pt")).logits
    assert model.config.id2label[int(logits.argmax())] == "low"


def test_training_resumes_from_the_last_checkpoint(tone_folder, tmp_path):
    common = ["--data_dir", str(tone_folder), "--output_dir", str(tmp_path), "--config_overrides", TINY_CNN,
              "--per_device_train_batch_size", "16", "--max_length_seconds", "0.25", "--seed", "0",
              "--save_total_limit", "3", "--max_train_samples", "32", "--load_best_model_at_end", "False"]
    main(common + ["--num_train_epochs", "1"])
    first = epoch_losses(tmp_path)
    assert (tmp_path / "checkpoint-2").is_dir()
    main(common + ["--num_train_epochs", "2"])  # no --overwrite_output_dir: picks up checkpoint-2
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert epoch_losses(tmp_path)[:1] == first  # the first epoch was not trained again


def test_lstm_baseline_trains_through_the_recipe(tone_folder, tmp_path):
    main(["--data_dir", str(tone_folder), "--output_dir", str(tmp_path), "--model_type", "lstm",
          "--config_overrides", TINY_LSTM, "--num_train_epochs", "3", "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "8", "--max_length_seconds", "0.3", "--oversample",
          "--noise_snr_db", "20,30", "--speed_factors", "0.9,1.1"])  # not with --class_weighted_loss: refused
    losses = epoch_losses(tmp_path)
    assert losses[-1] < losses[0]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "hfspeech-lstm"


def test_inverse_frequency_weights_balance_the_classes():
    labels = [0] * 8 + [1] * 2 + [2] * 0 + [3] * 2
    weights = inverse_frequency_weights(labels, 4)
    assert weights[2] == 0
    totals = np.bincount(labels, minlength=4) * weights
    assert np.allclose(totals[[0, 1, 3]], totals[0])


def test_oversampling_draws_classes_evenly(tmp_path):
    labels = np.array([0] * 90 + [1] * 10)
    sample_weights = inverse_frequency_weights(labels, 2)[labels]
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", seed=1)
    model = torch.nn.Linear(1, 2)
    trainer = AudioClassificationTrainer(model=model, args=args, train_dataset=list(range(100)),
                                         sample_weights=sample_weights)
    drawn = labels[list(trainer._get_train_sampler())]
    assert 0.35 < drawn.mean() < 0.65  # about half from the 10% class


def test_class_weighted_loss_is_the_weighted_cross_entropy(tmp_path):
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor([2.0, 0.0, -1.0]))

        def forward(self, input_values, labels=None):
            from transformers.modeling_outputs import SequenceClassifierOutput

            return SequenceClassifierOutput(logits=self.bias.expand(len(input_values), 3))

    weights = [0.5, 2.0, 1.0]
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    trainer = AudioClassificationTrainer(model=Fixed(), args=args, class_weights=weights)
    labels = torch.tensor([0, 1, 1, 2])
    loss = trainer.compute_loss(trainer.model, {"input_values": torch.zeros(4, 5), "labels": labels})
    log_p = torch.log_softmax(torch.tensor([2.0, 0.0, -1.0]), -1)[labels]
    w = torch.tensor(weights)[labels]
    assert loss.item() == pytest.approx((-(w * log_p).sum() / w.sum()).item(), rel=1e-6)


def test_metrics_match_hand_computed_values():
    metrics = ClassificationMetrics().compute(predictions=[0, 0, 1, 2], references=[0, 1, 1, 2], labels=[0, 1, 2, 3])
    assert metrics["accuracy"] == 0.75
    # F1 per class: 0 -> 2/3, 1 -> 2/3, 2 -> 1; 3 (neither in the references nor predicted) has none and is
    # left out of the macro average, as sklearn's default and the multi-label metrics do.
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_recipe_runs_under_accelerate_launch(tone_folder, tmp_path):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(REPO / "recipes" / "finetune.py"), "--data_dir", str(tone_folder), "--output_dir",
               str(tmp_path / "run"), "--config_overrides", TINY_CNN, "--num_train_epochs", "1",
               "--max_length_seconds", "0.25", "--max_train_samples", "24"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_fsdd_speaker_id_from_a_manifest_at_8k(fsdd_dir, tmp_path):
    """Real recordings: 8 kHz FSDD clips, labelled by speaker through a CSV manifest, resampled to 16 kHz."""
    files = sorted(fsdd_dir.glob("*.wav"))
    chosen = [f for f in files if int(f.stem.split("_")[2]) < 6 and f.stem.startswith(("1_", "2_"))]
    manifest = tmp_path / "speakers.csv"
    manifest.write_text("path,label\n" + "".join(f"{f},{f.stem.split('_')[1]}\n" for f in chosen))
    main(["--train_file", str(manifest), "--output_dir", str(tmp_path / "run"), "--config_overrides", TINY_CNN,
          "--num_train_epochs", "2", "--max_length_seconds", "1.0", "--validation_split_percentage", "20",
          "--test_split_percentage", "20"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["labels"] == ["george", "jackson", "lucas", "nicolas"]
    assert metrics["num_train_clips"] + metrics["num_validation_clips"] + metrics["num_test_clips"] == len(chosen)
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["sampling_rate"] == 16000 and report["num_skipped"] == 0


def test_training_without_a_train_split_says_so(tone_folder, tmp_path):
    manifest = tmp_path / "test.csv"
    manifest.write_text("path,label\n" + "".join(f"{f},{f.parent.name}\n" for f in sorted(tone_folder.glob("*/*.wav"))[:3]))
    with pytest.raises(ValueError, match=r"training needs a 'train' split; the data has \['test'\]"):
        main(["--test_file", str(manifest), "--output_dir", str(tmp_path / "run")])


@pytest.mark.parametrize("command, flag", [("train", "--noise_dir"), ("cross-validate", "--group_column"),
                                           ("distill", "--teacher_batch_size"), ("train", "--args_file"),
                                           ("distill", "--student_model_type")])
def test_help_lists_every_flag_of_the_recipe(command, flag, capsys):
    from hfspeech.cli import main as cli

    with pytest.raises(SystemExit) as exit_info:
        cli([command, "--help"])  # transformers' --args_file pre-parser used to answer with its own help alone
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and flag in out and "--data_dir" in out and "--learning_rate" in out
