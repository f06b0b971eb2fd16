"""A training log without progress-bar redraws, and carved splits that do not depend on a manifest's row order."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import datasets
import pytest
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Sequence

from conftest import TINY_CNN, write_tone_folder
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.splits import in_file_order, make_splits
from hfspeech.training.command_line import parse_args
from hfspeech.data.progress_bars import datasets_bars_follow


def test_a_training_log_holds_the_loss_lines_and_no_bar_redraws(tmp_path, capsys, monkeypatch):
    """stderr is not a terminal here (pytest captures it), as under `2> train.log`, nohup or CI."""
    from hfspeech.training.run import main

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))  # decoded afresh: map bars
    folder = write_tone_folder(tmp_path / "tones", clips_per_class=4, rates=(16000,))
    capsys.readouterr()
    main(["--data_dir", str(folder), "--output_dir", str(tmp_path / "run"), "--model_type", "cnn",
          "--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
          "--max_length_seconds", "0.5", "--logging_strategy", "steps", "--logging_steps", "1",
          "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False", "--seed", "0",
          "--validation_split_percentage", "0", "--test_split_percentage", "0"])
    out, err = capsys.readouterr()
    assert "\r" not in err and "it/s]" not in err and "examples/s]" not in err
    assert out.count("'loss': ") == 3  # 12 clips in batches of 4: one line a step
    assert not datasets.are_progress_bars_disabled()  # the run's choice ended with it


def test_disable_tqdm_defaults_to_the_terminal_and_an_explicit_flag_wins(tmp_path, monkeypatch):
    output = ["--output_dir", str(tmp_path / "run")]
    assert parse_args(output)[2].disable_tqdm is True  # stderr is a file
    assert parse_args([*output, "--disable_tqdm", "False"])[2].disable_tqdm is False
    flag_file = tmp_path / "flags.json"
    flag_file.write_text(json.dumps({"disable_tqdm": False}))
    assert parse_args([*output, "--args_file", str(flag_file)])[2].disable_tqdm is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert parse_args(output)[2].disable_tqdm is False  # a terminal: the bars, as before


def test_datasets_bars_are_off_for_the_block_only(monkeypatch):
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    with pytest.raises(RuntimeError):
        with datasets_bars_follow(True):
            assert datasets.are_progress_bars_disabled()
            raise RuntimeError("a failed run")
    assert not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # the caller's own choice is kept
    try:
        with datasets_bars_follow(True):
            pass
        assert datasets.are_progress_bars_disabled()
    finally:
        datasets.enable_progress_bars()


def _write_manifest(path: Path, rows: list[tuple[str, str]]) -> str:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"path": p, "label": label}) + "\n" for p, label in rows))
    else:
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([("path", "label"), *rows])
    return str(path)


def _split_files(**source) -> dict[str, list[str]]:
    raw = load_labelled_splits(DataSpec(source=source), seed=42)
    return {name: sorted(Path(clip["path"]).name for clip in column_values(split, "audio"))
            for name, split in raw.items()}


def test_a_manifest_splits_the_same_in_any_row_order_and_as_its_folder(tmp_path):
    folder = write_tone_folder(tmp_path / "tones", clips_per_class=10, rates=(16000,))
    rows = sorted((str(path.relative_to(tmp_path)), path.parent.name) for path in folder.rglob("*.wav"))
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    listed = _split_files(train_file=_write_manifest(tmp_path / "sorted.csv", rows))
    assert _split_files(train_file=_write_manifest(tmp_path / "shuffled.csv", shuffled)) == listed
    assert _split_files(train_file=_write_manifest(tmp_path / "reversed.jsonl", rows[::-1])) == listed
    assert _split_files(data_dir=str(folder)) == listed  # the folder's splits: those it always had


def test_multi_label_rows_split_the_same_in_any_order():
    names = ["a", "b", "c"]
    rows = [(f"/clips/{i:03d}.wav", [i % 3] + ([(i + 1) % 3] if i % 4 == 0 else [])) for i in range(40)]
    features = datasets.Features({"audio": Audio(decode=False), "label": Sequence(ClassLabel(names=names))})

    def splits(order):
        data = Dataset.from_dict({"audio": [p for p, _ in order], "label": [labels for _, labels in order]},
                                 features=features)
        made = make_splits(DatasetDict({"train": data}), 0.2, 0.2, seed=1)
        return {name: sorted(clip["path"] for clip in column_values(split, "audio")) for name, split in made.items()}

    assert splits(rows[::-1]) == splits(rows)


def test_audio_held_in_the_data_keeps_its_published_order():
    data = Dataset.from_dict({"audio": [{"path": f"{i}.wav", "bytes": b"RIFF"} for i in (2, 1, 0)],
                              "label": [0, 1, 0]}).cast_column("audio", Audio(decode=False))
    assert in_file_order(data) is data
    listed = data.cast_column("audio", Audio(decode=False)).map(lambda row: {"audio": {"path": row["audio"]["path"],
                                                                                       "bytes": None}})
    assert [clip["path"] for clip in column_values(in_file_order(listed), "audio")] == ["0.wav", "1.wav", "2.wav"]
