"""What a datasets user meets (session 31 audit): `hfspeech evaluate` scores clips held as bytes by their bytes,
not a file of their name in the current folder; a split given by a flag to another role than its name's
(`--eval_split_name test`, run_audio_classification.py's habit) is said in one line, the splits unchanged;
run_audio_classification.py's flags that hfspeech does not take are told what to give instead.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset, DatasetDict

from tests.conftest import run_cli_output, synth_clip
from tests.test_hub_dataset_inputs import CLASSES, KINDS
from tests.test_split_names import dataset, load, offline  # noqa: F401  (offline: the Hub off, autouse)


def tone_bytes_named_alike(per_class: int, seed: int = 7) -> list[dict]:
    """Rows as many Hub datasets hold them: each clip's own WAV bytes, every one named `audio.wav` (the tone
    classes `trained_cnn` knows)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, kind in enumerate(KINDS):
        for _ in range(per_class):
            buffer = io.BytesIO()
            sf.write(buffer, synth_clip(kind, rng, 16000), 16000, format="WAV")
            rows.append({"audio": {"bytes": buffer.getvalue(), "path": "audio.wav"}, "label": label})
    return rows


def evaluated_in(folder: Path, model: Path, data: Path, capsys, monkeypatch) -> dict:
    """`hfspeech evaluate` run from `folder`: its metrics and confusion matrix."""
    monkeypatch.chdir(folder)
    output = folder / "evaluation"
    code, _, err = run_cli_output(["evaluate", "--model", str(model), "--dataset_name", str(data),
                                   "--output_dir", str(output)], capsys)
    assert code == 0, err
    metrics = json.loads((output / "test_metrics.json").read_text())
    matrix = json.loads((output / "test_confusion_matrix.json").read_text())["matrix"]
    return {"accuracy": metrics["accuracy"], "matrix": matrix}


def test_evaluate_scores_each_clips_bytes_not_a_file_of_its_name_here(trained_cnn, tmp_path, capsys, monkeypatch):
    data = tmp_path / "corpus"
    DatasetDict({"test": Dataset.from_list(tone_bytes_named_alike(4), features=CLASSES)}).save_to_disk(data)
    (elsewhere := tmp_path / "elsewhere").mkdir()
    (here := tmp_path / "here").mkdir()
    sf.write(here / "audio.wav", synth_clip("low", np.random.default_rng(1), 16000), 16000)

    apart = evaluated_in(elsewhere, trained_cnn, data, capsys, monkeypatch)
    beside = evaluated_in(here, trained_cnn, data, capsys, monkeypatch)
    # Before: from `here` every clip was scored as ./audio.wav (one column of the matrix, accuracy 1/3).
    assert beside == apart
    assert sum(1 for row in beside["matrix"] for count in row if count) > 1


def train_and_test(per_class=(4, 2)) -> dict[str, list[dict]]:
    from tests.test_hub_dataset_inputs import rows

    return {name: rows(n, path=lambda kind, i, name=name: f"{name}_{kind}_{i}.wav", seed=100 * s)
            for s, (name, n) in enumerate(zip(("train", "test"), per_class))}


def origins(splits: dict[str, list[str]]) -> dict[str, set[str]]:
    """{role: the dataset splits its clips come from}, read from the file names."""
    return {role: {Path(p).name.split("_")[0] for p in files} for role, files in splits.items()}


@pytest.mark.parametrize("streaming", [False, True])
def test_eval_split_name_test_says_the_test_split_is_cut_out_of_train(tmp_path, streaming):
    name = dataset(tmp_path / "corpus", "saved", train_and_test())
    splits, report = load(streaming, dataset_name=name, eval_split_name="test", max_eval_samples=2)
    # The splits as before: 'test' validates, the test split is cut out of train.
    assert origins(splits) == {"train": {"train"}, "validation": {"test"}, "test": {"train"}}
    said = [note for note in report.notes if "--eval_split_name test" in note]
    assert len(said) == 1, report.notes
    assert "picks the best checkpoint" in said[0] and "--test_split_percentage" in said[0]
    assert "--test_split_name" in said[0] and "without --eval_split_name, 'test' is the test split" in said[0]


def test_test_split_name_validation_says_the_validation_split_is_cut_out_of_train(tmp_path):
    splits = train_and_test()
    splits["validation"] = splits.pop("test")
    name = dataset(tmp_path / "corpus", "saved", splits)
    loaded, report = load(False, dataset_name=name, test_split_name="validation")
    assert origins(loaded) == {"train": {"train"}, "validation": {"train"}, "test": {"test"}}
    said = [note for note in report.notes if "--test_split_name validation" in note]
    assert len(said) == 1 and "--validation_split_percentage" in said[0] and "--eval_split_name" in said[0]


@pytest.mark.parametrize("flags", [{}, {"eval_split_name": "test", "test_split_name": "validation"}])
def test_splits_without_a_role_taken_from_another_load_without_the_note(tmp_path, flags):
    splits = train_and_test((4, 2))
    splits["validation"] = train_and_test((1, 1))["test"]
    name = dataset(tmp_path / "corpus", "saved", splits)
    _, report = load(False, dataset_name=name, **flags)
    assert not [note for note in report.notes if "cut out of train" in note]


@pytest.mark.parametrize("flag, gives, not_told", [
    ("--eval_file", "--validation_file", "--test_file"),
    ("--eval-file", "--validation_file", "--test_file"),
    ("--config_name", "--config_overrides", "--dataset_config_name"),
    ("--feature_extractor_name", "--model_name_or_path", None),
])
def test_run_audio_classification_flags_are_told_what_to_give(flag, gives, not_told, capsys):
    code, _, err = run_cli_output(["train", "--data_dir", "data", flag, "x"], capsys)
    assert code == 2 and f"unknown flag(s) ['{flag}']" in err
    hint = err.split(f"['{flag}']", 1)[1].split("; `hfspeech train --help`")[0]
    assert gives in hint and (not_told is None or not_told not in hint)


def test_a_command_without_the_equivalent_flag_gets_no_such_hint(capsys):
    code, _, err = run_cli_output(["predict", "model", "clip.wav", "--eval_file", "x"], capsys)
    assert code == 2 and "unknown flag(s) ['--eval_file']" in err and "--validation_file" not in err
