"""The model card `hfspeech stage` writes says what the run did: the training really done, a probe as a probe,
manifests as manifests, what the test numbers were measured on, no remote code where none is needed; staging
shows its progress and replaces its own earlier staging, never a folder of the user's."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import pipeline

from conftest import TINY_CNN, write_tone_folder
from hfspeech.cli import main as cli
from hfspeech.hub import StageError, stage_run
from hfspeech.training.run import main as train

QUICK = ["--max_length_seconds", "0.5", "--report_to", "none", "--disable_tqdm", "True", "--seed", "0"]


def write_manifests(folder: Path, tones: Path) -> tuple[Path, Path]:
    """train.csv (clips 0-3 of each tone, speakers 0 and 1) and a separate test.csv (clips 4-5, speakers 4 and 5):
    a test set of held-out speakers."""
    rows = {"train": [], "test": []}
    for path in sorted(tones.rglob("*.wav")):
        index = int(path.stem.split("_")[1])
        speaker = f"speaker{index if index >= 4 else index % 2}"
        rows["train" if index < 4 else "test"].append((str(path), path.parent.name, speaker))
    files = []
    for split, split_rows in rows.items():
        files.append(folder / f"{split}.csv")
        with open(files[-1], "w", newline="") as f:
            csv.writer(f).writerows([("path", "label", "speaker"), *split_rows])
    return files[0], files[1]


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory) -> Path:
    """A frozen tiny Whisper with a trained head (native WhisperForAudioClassification), trained from CSV
    manifests with a separate --test_file, stopped by --max_steps long before --num_train_epochs."""
    root = tmp_path_factory.mktemp("probe")
    assert cli(["tiny-model", str(root / "base"), "--model_type", "whisper"]) == 0
    train_csv, test_csv = write_manifests(root, write_tone_folder(root / "tones", clips_per_class=6, rates=(16000,)))
    train(["--model_name_or_path", str(root / "base"), "--train_file", str(train_csv), "--test_file", str(test_csv),
           "--output_dir", str(root / "run"), "--freeze_base_model", "--max_steps", "3", "--num_train_epochs", "10",
           "--per_device_train_batch_size", "2", "--head_learning_rate", "0.01", "--use_weighted_layer_sum", "true",
           "--group_column", "speaker", "--eval_strategy", "no", "--save_strategy", "no", *QUICK])
    return root / "run"


@pytest.fixture(scope="module")
def cnn_runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny CNNs on an audio folder: one with a test split carved out of it, one with no test split at all."""
    root = tmp_path_factory.mktemp("cnn")
    tones = write_tone_folder(root / "tones", clips_per_class=8, rates=(16000,))
    runs = {"carved": root / "carved", "no test split": root / "none"}
    for flags, run in ((), runs["carved"]), (("--test_split_percentage", "0"), runs["no test split"]):
        train(["--data_dir", str(tones), "--output_dir", str(run), "--model_type", "cnn", "--config_overrides",
               TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--save_total_limit", "1",
               *QUICK, *flags])
    return runs


def staged_card(run: Path, dest: Path, **kwargs) -> str:
    stage_run(run, dest, repo_id="someone/model", **kwargs)
    return (dest / "README.md").read_text()


def section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip()


def table_rows(card: str) -> dict[str, str]:
    return dict(re.findall(r"^\| (\S[^|]*?) \| ([^|]*?) \|$", section(card, "Training procedure"), re.M))


def test_hyperparameters_show_the_training_done_and_the_options_set(probe_run, tmp_path):
    rows = table_rows(staged_card(probe_run, tmp_path / "repo"))
    state = json.loads((probe_run / "trainer_state.json").read_text())
    assert state["epoch"] < 10
    assert rows["num_train_epochs"] == "10 (not used: max_steps overrides it)" and rows["max_steps"] == "3"
    assert rows["epochs trained"] == f"{round(state['epoch'], 2):g}" and rows["optimizer steps trained"] == "3"
    assert {k: rows.get(k) for k in ("head_learning_rate", "freeze_base_model", "use_weighted_layer_sum",
                                     "group_column")} == {"head_learning_rate": "0.01", "freeze_base_model": "True",
                                                          "use_weighted_layer_sum": "True", "group_column": "speaker"}


def test_epochs_read_from_either_record_are_printed_alike(probe_run, tmp_path):
    """training_hyperparameters.json holds 10.0, trainer_state.json (older runs) an integer: both print `10`."""
    run = tmp_path / "run"
    shutil.copytree(probe_run, run)
    (run / "training_hyperparameters.json").unlink()
    state = json.loads((run / "trainer_state.json").read_text())
    (run / "trainer_state.json").write_text(json.dumps({**state, "num_train_epochs": 10}))
    old = table_rows(staged_card(run, tmp_path / "old"))
    new = table_rows(staged_card(probe_run, tmp_path / "new"))
    assert old["num_train_epochs"] == "10" and new["num_train_epochs"].split(" ")[0] == "10"


def test_a_frozen_base_is_a_probe_not_a_fine_tune(probe_run, tmp_path):
    intro = staged_card(probe_run, tmp_path / "repo").split("## Intended use")[0]
    assert "fine-tuned from" not in intro and "a probe, a classification head trained on the frozen" in intro


def test_manifests_are_described_as_manifests_without_their_paths(probe_run, tmp_path):
    card = staged_card(probe_run, tmp_path / "repo")
    dataset = ModelCard(card).data.eval_results[0]
    assert (dataset.dataset_type, dataset.dataset_name, dataset.dataset_split) == ("csv", "local CSV manifests", "test")
    assert section(card, "Training data").startswith("Local CSV manifests (--train_file, --test_file);")
    assert "audiofolder" not in card and "A local audio data set" not in card
    assert str(probe_run.parent) not in card


def test_the_limitations_say_what_the_test_numbers_were_measured_on(probe_run, cnn_runs, tmp_path):
    separate = section(staged_card(probe_run, tmp_path / "separate"), "Limitations")
    assert "held-out split of the training data" not in separate
    assert "a test set given apart from the training data" in separate
    carved = section(staged_card(cnn_runs["carved"], tmp_path / "carved"), "Limitations")
    assert "held out at random from the training data above" in carved
    card = staged_card(cnn_runs["no test split"], tmp_path / "none")
    metrics = json.loads((cnn_runs["no test split"] / "metrics.json").read_text())
    assert any(w.startswith("no test split") for w in metrics["data_warnings"])
    assert not re.search(r"held-out (test )?split|held out (at random|by)", card)
    assert "There was no test split: the scores are on the validation split" in section(card, "Limitations")
    assert ModelCard(card).data.eval_results[0].dataset_split == "validation"


def test_a_native_transformers_model_is_used_without_remote_code(probe_run, tmp_path):
    repo = tmp_path / "repo"
    card = staged_card(probe_run, repo)
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "trust_remote_code" not in card and 'pipeline("audio-classification", model="someone/model")' in snippet
    clip = next(probe_run.parent.joinpath("tones", "low").glob("*.wav"))
    classifier = pipeline("audio-classification", model=str(repo))  # as the snippet does, from the staged folder
    assert classifier(str(clip), top_k=3)[0]["label"] in {"low", "high", "noise"}


def test_measuring_on_an_eval_dir_shows_progress(cnn_runs, tmp_path, capsys):
    clips = write_tone_folder(tmp_path / "clips", clips_per_class=1, rates=(16000,))
    stage_run(cnn_runs["carved"], tmp_path / "repo", eval_dir=clips)
    err = capsys.readouterr().err
    assert "measuring PyTorch fp32 on --eval_dir" in err and "3/3" in err


def test_an_earlier_staging_is_replaced_and_a_users_folder_is_refused(probe_run, cnn_runs, tmp_path, capsys):
    dest = tmp_path / "repo"
    stage_run(cnn_runs["carved"], dest)  # a baseline: its model code is staged beside it
    assert list(dest.glob("*.py"))
    files = stage_run(probe_run, dest)  # replaced by the Whisper probe: no leftover code, no scratch folder
    assert not list(dest.glob("*.py")) and sorted(dest.rglob("*")) == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    assert json.loads((dest / "config.json").read_text())["model_type"] == "whisper"

    (dest / "notes.txt").write_text("mine")
    assert cli(["stage", str(cnn_runs["carved"]), str(dest)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {dest}: holds files `hfspeech stage` did not write (notes.txt)") and "\n" not in err
    assert (dest / "notes.txt").read_text() == "mine" and json.loads((dest / "config.json").read_text())["model_type"] \
        == "whisper"
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("README.md", "config.json"):  # a model folder of the user's, not a staging
        (mine / name).write_text("{}")
    with pytest.raises(StageError, match="holds other files, not an earlier staging"):
        stage_run(probe_run, mine)


def test_a_restaging_that_fails_leaves_the_earlier_staging_as_it_was(cnn_runs, tmp_path):
    dest = tmp_path / "repo"
    stage_run(cnn_runs["carved"], dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    clips = tmp_path / "clips"
    (clips / "low").mkdir(parents=True)
    (clips / "low" / "bad.wav").write_bytes(b"RIFF but not audio")  # found, but fails when measured
    with pytest.raises(Exception, match="bad.wav"):
        stage_run(cnn_runs["no test split"], dest, eval_dir=clips)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips", "repo"]


def test_the_intended_clip_length_is_the_crop_trained_on_not_whispers_window(probe_run, tmp_path):
    """Whisper's config holds its encoder window (1 s for the tiny model), the run trained on 0.5 s crops."""
    assert json.loads((probe_run / "config.json").read_text())["max_length_seconds"] != 0.5
    card = staged_card(probe_run, tmp_path / "repo")
    assert "about 0.5 s, the crop length it was trained on" in section(card, "Intended use")
