"""`--streaming`: training from a stream of clip references decoded per batch (hfspeech.data.streaming)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.data.audio import AudioFileError
from hfspeech.data.loading import DataError
from hfspeech.data.streaming import load_streamed_data
from hfspeech.training.streaming import streaming_max_steps
from hfspeech.training.arguments import DataArguments
from hfspeech.training.run import main
from tests.conftest import TINY_CNN, synth_clip


def paths_of(stream) -> list[str]:
    return [Path(example["audio"]["path"]).name for example in stream]


def test_streamed_run_learns_and_writes_every_output(tone_folder, tmp_path):
    out = tmp_path / "run"
    main(["--data_dir", str(tone_folder), "--streaming", "--shuffle_buffer_size", "16", "--output_dir", str(out),
          "--config_overrides", TINY_CNN, "--num_train_epochs", "5", "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5", "--seed", "0",
          "--save_total_limit", "1", "--noise_snr_db", "25,35"])
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json",
                 "data_report.json", "test_confusion_matrix.json", "trainer_state.json"):
        assert (out / name).is_file(), name
    state = json.loads((out / "trainer_state.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    n_train = metrics["num_train_clips"]
    assert n_train + metrics["num_validation_clips"] + metrics["num_test_clips"] == 60
    # max_steps was computed from the index: 5 passes over the stream, ceil(n/8) batches each.
    assert state["global_step"] == 5 * math.ceil(n_train / 8)
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert [e["epoch"] for e in state["log_history"] if "loss" in e] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert losses[-1] < 0.7 * losses[0], losses
    assert metrics["test_accuracy"] > 0.6, metrics  # chance is 1/3


def streaming_args(tone_folder, **overrides) -> DataArguments:
    return DataArguments(data_dir=str(tone_folder), streaming=True, shuffle_buffer_size=8, **overrides)


def test_shuffle_changes_every_epoch_is_seeded_and_keeps_held_out_clips_out(tone_folder):
    data = load_streamed_data(streaming_args(tone_folder).spec(), 16000, seed=3)
    data.train.set_epoch(0)
    first = paths_of(data.train)
    data.train.set_epoch(1)
    second = paths_of(data.train)
    assert sorted(first) == sorted(second) and len(first) == data.num_train_rows
    assert first != second  # reshuffled for the new epoch

    again = load_streamed_data(streaming_args(tone_folder).spec(), 16000, seed=3)
    again.train.set_epoch(1)
    assert paths_of(again.train) == second  # same seed, same epoch: same order
    other = load_streamed_data(streaming_args(tone_folder).spec(), 16000, seed=4)
    other.train.set_epoch(1)
    assert paths_of(other.train) != second

    held_out = {Path(p).name for split in data.evaluation.values() for p in split["path"]}
    assert held_out and not held_out & set(first)


def write_manifest(path: Path, rows) -> Path:
    path.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    return path


@pytest.fixture
def manifests_with_a_bad_train_file(tone_folder, tmp_path):
    clips = sorted(tone_folder.glob("*/*.wav"))
    broken = tmp_path / "broken_clip.wav"
    broken.write_bytes(b"RIFF not really a wav file" * 10)
    rows = [(p, p.parent.name) for p in clips]
    train = write_manifest(tmp_path / "train.csv", rows[::2] + [(broken, "low")])
    valid = write_manifest(tmp_path / "valid.csv", rows[1::4])
    test = write_manifest(tmp_path / "test.csv", rows[3::4])
    return ["--train_file", str(train), "--validation_file", str(valid), "--test_file", str(test)]


def test_a_bad_file_in_the_stream_stops_training_with_its_name(manifests_with_a_bad_train_file, tmp_path):
    with pytest.raises(AudioFileError, match="broken_clip.wav: cannot be decoded"):
        main(manifests_with_a_bad_train_file + [
            "--streaming", "--output_dir", str(tmp_path / "run"), "--config_overrides", TINY_CNN,
            "--num_train_epochs", "1", "--per_device_train_batch_size", "31", "--max_length_seconds", "0.25"])


def test_skip_bad_files_drops_and_reports_a_streamed_bad_file(manifests_with_a_bad_train_file, tmp_path):
    out = tmp_path / "run"
    main(manifests_with_a_bad_train_file + [
        "--streaming", "--skip_bad_files", "--output_dir", str(out), "--config_overrides", TINY_CNN,
        "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--max_length_seconds", "0.25"])
    report = json.loads((out / "data_report.json").read_text())
    assert [Path(f["path"]).name for f in report["skipped"]["train"]] == ["broken_clip.wav"]  # once, not per epoch
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_skipped_files"] == 1 and metrics["num_train_clips"] == 30


def write_streamed_folder(root: Path, per_kind: int = 10) -> Path:
    """A data folder `load_dataset` streams like a Hub dataset: JSONL rows of audio path + string label."""
    rng = np.random.default_rng(0)
    (root / "clips").mkdir()
    rows = []
    for kind in ("low", "high"):
        for i in range(per_kind):
            path = root / "clips" / f"{kind}_{i}.wav"
            sf.write(path, synth_clip(kind, rng, 16000, 0.2), 16000)
            rows.append({"audio": str(path), "intent": kind})
    folder = root / "hub_like"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def streamed_folder(tmp_path) -> Path:
    return write_streamed_folder(tmp_path)


def test_a_streamed_dataset_holds_out_validation_and_needs_class_names_and_max_steps(streamed_folder, tmp_path):
    args = dict(dataset_name=str(streamed_folder), label_column_name="intent", streaming=True,
                shuffle_buffer_size=4, max_eval_samples=3)
    with pytest.raises(DataError, match="not a ClassLabel.*--class_names"):
        load_streamed_data(DataArguments(**args).spec(), 16000, seed=0)

    data = load_streamed_data(DataArguments(**args, class_names="low,high").spec(), 16000, seed=0)
    assert data.label_names == ["low", "high"] and data.num_train_rows is None
    assert {name: len(split) for name, split in data.evaluation.items()} == {"validation": 3, "test": 3}
    held_out = {Path(p).name for split in data.evaluation.values() for p in split["path"]}
    train = [(Path(e["audio"]["path"]).name, e["label"]) for e in data.train]
    assert len(train) == 14 and not held_out & {name for name, _ in train}
    assert all(label == (0 if name.startswith("low") else 1) for name, label in train)

    from transformers import TrainingArguments

    with pytest.raises(DataError, match="needs --max_steps"):
        streaming_max_steps(data.num_train_rows, TrainingArguments(output_dir=str(tmp_path), report_to="none"))
