"""A new user's folder with a corrupt WAV and a 0-byte FLAC (session 30's audit), fixed where it was met.

- `training_clips.json` listed the files `--skip_bad_files` skipped as clips the model trained on: the 0-byte
  file's digest is SHA-1 of nothing, so every empty file anywhere then counted as trained on, and `hfspeech
  evaluate` counted them among "N of M clips ... trained on" (M with the skipped files too).
- A bad file stopped `train` and `evaluate` naming it, with no word on how to go on: deleted, the next one stopped
  the next run.
- `hfspeech evaluate --skip_bad_files` said nothing on stderr about the files it skipped.
- `hfspeech evaluate --help` showed "(default: test, ...). (default: None)".
- `hfspeech average` averaged runs of 1 and 10 epochs without a word.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pytest

from tests.conftest import TINY_CNN, run_cli_output, write_tone_folder
from tests.test_averaging import save_cnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

EMPTY_DIGEST = hashlib.sha1(b"").hexdigest()[:16]
BAD_FILES = ("low/low_corrupt.wav", "noise/noise_empty.flac")


def tone_folder_with_bad_files(root: Path) -> Path:
    """`root/train/<label>/` (tone clips, a corrupt WAV, a 0-byte FLAC) and `root/test/<label>/`: the bad files
    are in train, so a run's train or validation split always holds them."""
    write_tone_folder(root / "train", clips_per_class=8, rates=(16000,), seed=1)
    write_tone_folder(root / "test", clips_per_class=3, rates=(16000,), seed=2)
    (root / "train" / BAD_FILES[0]).write_bytes(b"RIFF" + bytes(range(256)) * 8)
    (root / "train" / BAD_FILES[1]).write_bytes(b"")
    return root


def digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def run_on_bad_files(tmp_path_factory):
    """(data folder, a one-epoch tiny CNN trained on it with --skip_bad_files)."""
    from hfspeech.training.run import main

    data = tone_folder_with_bad_files(tmp_path_factory.mktemp("journey30"))
    output_dir = data.parent / "run"
    main(["--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
          "--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
          "--max_length_seconds", "0.5", "--seed", "0", "--save_total_limit", "1", "--skip_bad_files"])
    return data, output_dir


def test_training_clips_lists_the_clips_kept_not_the_bad_files_skipped(run_on_bad_files):
    data, run = run_on_bad_files
    record = json.loads((run / "training_clips.json").read_text())
    recorded = set(record["train"]) | set(record["validation"])
    assert EMPTY_DIGEST not in recorded and digest(data / "train" / BAD_FILES[0]) not in recorded
    kept = json.loads((run / "metrics.json").read_text())
    assert len(record["train"]) == kept["num_train_clips"] and len(record["validation"]) == kept["num_validation_clips"]


def test_evaluate_counts_seen_clips_among_the_clips_it_scored_and_says_what_it_skipped(run_on_bad_files, tmp_path,
                                                                                       capsys, caplog):
    data, run = run_on_bad_files
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli_output(["evaluate", str(run), "--data_dir", str(data), "--split", "train",
                                         "--skip_bad_files", "--output_dir", str(tmp_path / "eval")], capsys)
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["num_clips"] == 24 and metrics["num_skipped_files"] == 2
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(w.startswith("data: 24 of 24 clips are clips the model was trained on") for w in warnings), warnings
    skipped = [w for w in warnings if w.startswith("data: skipped 2 bad file(s) (e.g. ")]
    assert len(skipped) == 1 and skipped[0].endswith("listed in data_report.json"), warnings


def test_a_bad_file_stops_train_and_evaluate_saying_how_to_go_on(run_on_bad_files, tmp_path, capsys):
    data, run = run_on_bad_files
    code, _, err = run_cli_output(["train", "--data_dir", str(data), "--output_dir", str(tmp_path / "run"),
                                   "--model_type", "cnn", "--config_overrides", TINY_CNN], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"(low_corrupt\.wav|noise_empty\.flac): .*--skip_bad_files skips such files", err), err
    code, _, err = run_cli_output(["evaluate", str(run), "--data_dir", str(data), "--split", "train",
                                   "--output_dir", str(tmp_path / "eval")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"(low_corrupt\.wav|noise_empty\.flac): .*--skip_bad_files skips such files", err), err


def test_evaluate_help_gives_each_flag_one_default(capsys):
    code, out, _ = run_cli_output(["evaluate", "--help"], capsys)
    assert code == 0
    helps = {block.split()[0]: " ".join(block.split()) for block in re.split(r"\n  (?=-)", out)[1:]}
    assert "(default: test, else the first split" in helps["--split"]
    assert "(default:" not in helps["--model"]  # required: it has none
    assert [flag for flag, text in helps.items() if text.count("(default:") > 1] == []


def test_average_warns_naming_what_the_runs_differ_in_besides_their_seed(tmp_path, caplog, capsys):
    for seed, epochs in enumerate((1.0, 10)):
        save_cnn(tmp_path / f"run{seed}", seed)
        (tmp_path / f"run{seed}" / "training_hyperparameters.json").write_text(json.dumps(
            {"learning_rate": 0.01, "num_train_epochs": epochs, "seed": seed}))
    save_cnn(tmp_path / "run2", 2)
    (tmp_path / "run2" / "training_hyperparameters.json").write_text(json.dumps(
        {"learning_rate": 0.01, "num_train_epochs": 1.0, "seed": 2}))
    with caplog.at_level(logging.WARNING):
        code, _, err = run_cli_output(["average", str(tmp_path / "run0"), str(tmp_path / "run2"),
                                       "--output_dir", str(tmp_path / "seeds")], capsys)
        assert code == 0, err
        assert "differ in more than their seed" not in caplog.text
        code, _, err = run_cli_output(["average", str(tmp_path / "run0"), str(tmp_path / "run1"),
                                       "--output_dir", str(tmp_path / "epochs")], capsys)
    assert code == 0, err
    assert "the runs differ in more than their seed (num_train_epochs: 1.0, 10)" in caplog.text
