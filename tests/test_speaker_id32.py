"""Speaker ID (the label is the speaker): splits that hold out whole speakers hold out whole classes.

`train --group_column speaker` on such data carved validation and test splits of speakers the model never trained
on (accuracy 0 by construction) with only warnings; a Speech Commands tree rearranged as a folder per speaker was
grouped the same way with no flag at all; `evaluate` of one speaker's clips said nothing about the model's other
classes being absent from its set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli_output, save_random_baseline, write_csv_manifest
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.prepare import DataReport
from hfspeech.errors import DataError

SPEAKERS = ("ann", "bob", "cat", "dan")


def write_clip(path: Path, rng: np.random.Generator) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
    return str(path)


def speaker_rows(folder: Path, speakers=SPEAKERS, clips: int = 10, sessions: int = 2) -> list[dict]:
    """Speaker ID rows: label = speaker, each speaker recorded in `sessions` sessions shared by all speakers."""
    rng = np.random.default_rng(0)
    return [{"path": write_clip(folder / f"{speaker}_{i}.wav", rng), "label": speaker, "speaker": speaker,
             "session": f"s{i % sessions}"} for speaker in speakers for i in range(clips)]


def labels_in(split) -> set:
    names = split.features["label"].names
    return {names[i] for i in column_values(split, "label")}


def test_train_refuses_carved_splits_of_whole_speakers_when_the_speaker_is_the_label(tmp_path):
    manifest = write_csv_manifest(tmp_path / "all.csv", speaker_rows(tmp_path / "clips"))
    with pytest.raises(DataError) as caught:
        load_labelled_splits(DataSpec(source={"train_file": manifest}, group_column="speaker"), seed=42)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--group_column speaker: the test split")
    assert "every speaker group holds one class" in message and "is speaker the label?" in message
    assert "group by recording session" in message and "--test_file" in message
    assert any(f"({name})" in message for name in SPEAKERS)  # the class held out is named


def test_the_readme_form_with_a_given_test_file_refuses_the_carved_validation_speaker(tmp_path):
    rows = speaker_rows(tmp_path / "clips")
    train = write_csv_manifest(tmp_path / "train.csv", [row for row in rows if row["session"] == "s0"])
    test = write_csv_manifest(tmp_path / "test.csv", [row for row in rows if row["session"] == "s1"])
    spec = DataSpec(source={"train_file": train, "test_file": test}, group_column="speaker")
    with pytest.raises(DataError, match=r"the validation split carved by whole groups holds 1 class"):
        load_labelled_splits(spec, seed=42)


def test_a_class_whose_only_group_is_held_out_is_refused_naming_it(tmp_path):
    """Groups of several classes each, each group also holding a class of its own: whichever group the seed holds
    out, its own class is one train lacks; the message says so, not that the group is the label."""
    rng = np.random.default_rng(1)
    rows = [{"path": write_clip(tmp_path / group / f"{label}_{i}.wav", rng), "label": label, "session": group}
            for group in ("g1", "g2", "g3", "g4", "g5") for label in ("yes", "no", f"only_{group}") for i in range(3)]
    spec = DataSpec(source={"train_file": write_csv_manifest(tmp_path / "all.csv", rows)}, group_column="session",
                    validation_percentage=0.0, test_percentage=20.0)
    with pytest.raises(DataError, match=r"no clip of \(only_g\d\): all their clips are in the groups held out; "
                                        r"group by recording session"):
        load_labelled_splits(spec, seed=0)


def test_speaker_id_grouped_by_session_trains_every_speaker_and_given_splits_keep_their_warnings(tmp_path):
    manifest = write_csv_manifest(tmp_path / "all.csv", speaker_rows(tmp_path / "clips", sessions=5))
    splits = load_labelled_splits(DataSpec(source={"train_file": manifest}, group_column="session"), seed=42)
    assert labels_in(splits["validation"]) | labels_in(splits["test"]) <= labels_in(splits["train"])
    rows = speaker_rows(tmp_path / "given")
    files = {f"{name}_file": write_csv_manifest(tmp_path / f"{name}.csv", rows[offset::3])
             for offset, name in enumerate(("train", "validation", "test"))}
    report = DataReport()
    load_labelled_splits(DataSpec(source=files, group_column="speaker"), seed=42, report=report)
    assert any("groups leak across the train/test splits" in warning for warning in report.warnings)


def test_the_train_command_stops_in_one_line_before_training(tmp_path, capsys):
    manifest = write_csv_manifest(tmp_path / "all.csv", speaker_rows(tmp_path / "clips"))
    code, _, err = run_cli_output(["train", "--train_file", manifest, "--group_column", "speaker", "--output_dir",
                                   str(tmp_path / "run"), "--model_type", "cnn", "--report_to", "none"], capsys)
    lines = [line for line in err.splitlines() if "--group_column speaker: the test split" in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_speech_commands_tree_with_a_folder_per_speaker_is_carved_by_file_with_a_note(tmp_path):
    rng = np.random.default_rng(0)
    hashes = ("0a7c2a8d", "0b40aa8e", "0c40e715", "0d53e045", "0f3f64d5")
    for speaker in hashes:
        for n in range(8):
            write_clip(tmp_path / "data" / speaker / f"{speaker}_nohash_{n}.wav", rng)
    report = DataReport()
    spec = DataSpec(source={"data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")})
    splits = load_labelled_splits(spec, seed=42, report=report)
    assert labels_in(splits["train"]) == set(hashes) and "group" not in splits["train"].column_names
    assert labels_in(splits["validation"]) | labels_in(splits["test"]) <= set(hashes)
    assert any("carved by file" in note and "--group_column session" in note for note in report.notes)


def test_evaluate_warns_of_the_models_classes_its_set_lacks(tmp_path):
    from hfspeech.evaluation.evaluate_model import EvaluateArguments, evaluate_model

    model = save_random_baseline(tmp_path / "model", "cnn", SPEAKERS, 0.02, conv_channels=[4, 8], n_mels=16)
    rng = np.random.default_rng(0)
    for i in range(4):
        write_clip(tmp_path / "one_speaker" / "ann" / f"ann_{i}.wav", rng)
    metrics = evaluate_model(EvaluateArguments(model=str(model), output_dir=str(tmp_path / "evaluation")),
                             DataSpec(source={"data_dir": str(tmp_path / "one_speaker")}))
    expected = (f"the clips of {tmp_path / 'one_speaker'} hold no clip of 3 of 4 classes (bob, cat, dan): their "
                "scores leave them out (accuracy is over 1 class(es)")  # not "the train split": none was chosen
    assert any(warning.startswith(expected) for warning in metrics["data_warnings"])
    written = json.loads(next((tmp_path / "evaluation").glob("*metrics.json")).read_text())
    assert written["data_warnings"] == metrics["data_warnings"]


def test_the_card_says_when_classes_had_no_training_clip_under_a_grouped_split(tmp_path):
    """The warning the data stage writes when train lacks classes qualifies the card's "held out by whole groups"."""
    from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features

    from hfspeech.data.split_audit import audit_splits
    from hfspeech.hub.card_training import test_set_note

    rng = np.random.default_rng(0)
    features = Features({"audio": Audio(decode=False), "label": ClassLabel(names=list(SPEAKERS))})
    splits = DatasetDict({name: Dataset.from_dict(
        {"audio": [write_clip(tmp_path / f"{speaker}.wav", rng) for speaker in speakers],
         "label": [SPEAKERS.index(speaker) for speaker in speakers]}, features=features)
        for name, speakers in (("train", SPEAKERS[:2]), ("test", SPEAKERS[2:]))})
    warnings = audit_splits(splits)
    note = test_set_note({"test_split": "test", "test_accuracy": 0.0}, {"found": {"train": 4}}, warnings, "speaker",
                         staged_measurement=False)
    assert "held out by whole `speaker` groups" in note and "had no training clip" in note
    assert "no training clip" not in test_set_note({"test_split": "test"}, {"found": {"train": 4}}, [], "speaker",
                                                   staged_measurement=False)
