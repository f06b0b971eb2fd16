"""Group-disjoint evaluation: splits and leave-one-group-out folds never share a group, leaks are warned about."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset, DatasetDict

from hfspeech.data.groups import GROUP_COLUMN, group_disjoint_splits, leaked_groups
from hfspeech.training.arguments import DataArguments
from hfspeech.training.cross_validation import fold_rows, summarise, write_fold_manifests
from hfspeech.data.labelled import load_labelled_splits
from hfspeech.errors import DataError


def clips_table(seed: int, groups: int = 7, clips: int = 200) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset.from_dict({GROUP_COLUMN: [f"s{g}" for g in rng.integers(0, groups, clips)],
                              "label": rng.integers(0, 3, clips).tolist()})


@pytest.mark.parametrize("seed", range(6))
def test_group_disjoint_splits_never_share_a_group(seed):
    splits = group_disjoint_splits(DatasetDict(train=clips_table(seed)), 0.15, 0.2, seed=seed)
    members = {name: set(split[GROUP_COLUMN]) for name, split in splits.items()}
    assert set(members) == {"train", "validation", "test"} and all(members.values())
    assert not members["train"] & members["test"] and not members["train"] & members["validation"]
    assert not members["validation"] & members["test"]
    assert sum(len(s) for s in splits.values()) == 200


def test_leave_one_group_out_tests_each_group_once_and_never_trains_on_it():
    groups = clips_table(3)[GROUP_COLUMN]
    folds = fold_rows(groups, 0.1, seed=3)
    assert list(folds) == sorted(set(groups))
    for group, parts in folds.items():
        assert {groups[i] for i in parts["test"]} == {group}
        assert group not in {groups[i] for i in parts["train"] + parts["validation"]}
        assert sorted(parts["train"] + parts["validation"] + parts["test"]) == list(range(len(groups)))


def write_manifests(folder: Path, assignment: dict[str, list[str]]) -> dict[str, str]:
    """One short clip per row; `assignment` maps each split to the speakers of its rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {}
    for split, speakers in assignment.items():
        files[split] = str(folder / f"{split}.csv")
        with open(files[split], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "speaker"])
            for i, speaker in enumerate(speakers):
                path = folder / f"{split}-{i}.wav"
                sf.write(path, (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
                writer.writerow([path.name, ["yes", "no"][i % 2], speaker])
    return files


def test_a_manifest_whose_speakers_leak_into_the_test_split_is_warned_about(tmp_path, caplog):
    files = write_manifests(tmp_path, {"train": ["ann", "bob", "ann", "bob"], "test": ["bob", "cy"]})
    args = DataArguments(train_file=files["train"], test_file=files["test"], group_column="speaker",
                         validation_split_percentage=0)
    with caplog.at_level(logging.WARNING):
        load_labelled_splits(args.spec(), seed=0)
    leaks = [r.getMessage() for r in caplog.records if "leak" in r.getMessage()]
    assert len(leaks) == 1 and "train/test" in leaks[0] and "bob" in leaks[0] and "ann" not in leaks[0]

    caplog.clear()
    disjoint = write_manifests(tmp_path / "ok", {"train": ["ann", "bob", "ann", "bob"], "test": ["cy", "cy"]})
    with caplog.at_level(logging.WARNING):
        load_labelled_splits(DataArguments(train_file=disjoint["train"], test_file=disjoint["test"],
                                           group_column="speaker", validation_split_percentage=0).spec(), seed=0)
    assert not [r for r in caplog.records if "leak" in r.getMessage()]


def test_fold_manifests_hold_out_one_speaker_each(tmp_path):
    files = write_manifests(tmp_path, {"all": ["ann", "bob", "cy"] * 6})
    folds = write_fold_manifests(files["all"], "speaker", str(tmp_path / "cv"), 0.2, seed=0)
    assert sorted(folds) == ["ann", "bob", "cy"]
    for speaker, paths in folds.items():
        read = {name: list(csv.DictReader(open(path))) for name, path in paths.items()}
        assert {row["speaker"] for row in read["test"]} == {speaker} and len(read["test"]) == 6
        assert speaker not in {row["speaker"] for row in read["train"] + read["validation"]}
        assert len(read["train"]) + len(read["validation"]) == 12 and Path(read["train"][0]["path"]).is_file()
    assert leaked_groups(DatasetDict(a=Dataset.from_dict({GROUP_COLUMN: ["x"]}),
                                     b=Dataset.from_dict({GROUP_COLUMN: ["x", "y"]}))) == {"a/b": ["x"]}


@pytest.mark.parametrize("speakers, error", [(["ann", "ann"], "needs at least 2 groups in column 'speaker', found 1"),
                                             (["ann", " ", "bob"], "row 2 has an empty 'speaker' cell")])
def test_fold_manifests_refuse_one_group_or_an_empty_cell_naming_the_manifest(tmp_path, speakers, error):
    files = write_manifests(tmp_path, {"all": speakers})
    with pytest.raises(DataError, match=error) as raised:
        write_fold_manifests(files["all"], "speaker", str(tmp_path / "cv"), 0.2, seed=0)
    assert str(raised.value).startswith(files["all"]) and not (tmp_path / "cv").exists()


def test_fold_manifests_refuse_a_group_that_cannot_name_a_folder(tmp_path):
    """fold-<group> is a folder: a group "x/../../out" put that fold's manifests and run outside OUTPUT_DIR."""
    files = write_manifests(tmp_path / "data", {"all": ["ann", "x/../../out", "ann", "x/../../out"]})
    with pytest.raises(DataError, match=r"row 2: speaker 'x/\.\./\.\./out' cannot name a fold folder"):
        write_fold_manifests(files["all"], "speaker", str(tmp_path / "cv" / "root"), 0.0, seed=0)
    assert not (tmp_path / "cv").exists() and not (tmp_path / "out").exists()


def test_fold_manifests_refuse_a_label_only_one_group_has(tmp_path):
    """Its fold would train without the label and stop on its test split, after the folds before it trained."""
    files = write_manifests(tmp_path, {"all": ["ann", "bob", "ann", "bob", "cy", "cy"]})
    rows = Path(files["all"]).read_text().splitlines()
    rows[2] = rows[2].replace(",no,", ",maybe,")  # bob's first row
    Path(files["all"]).write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="label 'maybe' has no training clip in the fold that holds out speaker 'bob'"):
        write_fold_manifests(files["all"], "speaker", str(tmp_path / "cv"), 0.0, seed=0, label_column="label")
    assert not (tmp_path / "cv").exists()
    write_fold_manifests(files["all"], "speaker", str(tmp_path / "cv"), 0.0, seed=0)  # not checked without the column


def test_fold_validation_takes_a_row_when_its_share_rounds_to_none_and_none_at_zero(tmp_path):
    files = write_manifests(tmp_path, {"all": ["ann", "ann", "bob", "bob", "cy", "cy"]})
    folds = write_fold_manifests(files["all"], "speaker", str(tmp_path / "a"), 0.1, seed=0, label_column="label")
    assert all(len(list(csv.DictReader(open(paths["validation"])))) == 1 for paths in folds.values())
    folds = write_fold_manifests(files["all"], "speaker", str(tmp_path / "b"), 0.0, seed=0, label_column="label")
    assert all(sorted(paths) == ["test", "train"] for paths in folds.values())


def test_cross_validate_without_validation_trains_each_fold(tmp_path):
    """--validation_split_percentage 0 stopped on the first fold's empty validation manifest, a file the user
    never made; `hfspeech train` takes it as "no validation"."""
    import json

    from conftest import TINY_CNN
    from hfspeech.cli import main as cli

    files = write_manifests(tmp_path, {"all": ["ann", "ann", "bob", "bob"]})
    assert cli(["cross-validate", "--train_file", files["all"], "--group_column", "speaker", "--model_type", "cnn",
                "--config_overrides", TINY_CNN, "--output_dir", str(tmp_path / "cv"),
                "--max_steps", "1", "--validation_split_percentage", "0",
                "--disable_tqdm", "True"]) == 0
    assert sorted(json.loads((tmp_path / "cv" / "cross_validation.json").read_text())["folds"]) == ["ann", "bob"]


def test_fold_manifests_use_the_path_column_given(tmp_path):
    files = write_manifests(tmp_path, {"all": ["ann", "bob"] * 2})
    Path(files["all"]).write_text(Path(files["all"]).read_text().replace("path,", "audio,", 1))
    folds = write_fold_manifests(files["all"], "speaker", str(tmp_path / "cv"), 0.0, seed=0, path_column="audio")
    rows = list(csv.DictReader(open(folds["ann"]["train"])))
    assert [row["speaker"] for row in rows] == ["bob", "bob"] and Path(rows[0]["audio"]).is_file()


def test_summary_reports_mean_and_spread():
    summary = summarise([0.676, 0.624, 0.758, 0.688])
    assert summary["mean"] == pytest.approx(0.6865) and summary["std"] == pytest.approx(0.0478, abs=1e-4)
    assert (summary["min"], summary["max"], summary["folds"]) == (0.624, 0.758, 4)


def test_cross_validate_command_runs_one_fold_per_speaker(tmp_path):
    import json

    from hfspeech.cli import main as cli

    files = write_manifests(tmp_path, {"all": ["ann", "bob", "cy"] * 4})
    tiny = '{"width_multiplier": 0.5, "blocks_per_stage": [1, 1, 1, 1], "n_mels": 20}'
    assert cli(["cross-validate", "--train_file", files["all"], "--group_column", "speaker", "--model_type",
                "bcresnet", "--config_overrides", tiny, "--output_dir", str(tmp_path / "cv"), "--num_train_epochs",
                "1", "--validation_split_percentage", "25", "--save_strategy", "no", "--eval_strategy", "no",
                "--load_best_model_at_end", "False", "--disable_tqdm", "True"]) == 0
    summary = json.loads((tmp_path / "cv" / "cross_validation.json").read_text())
    assert sorted(summary["folds"]) == ["ann", "bob", "cy"] and summary["test_accuracy"]["folds"] == 3
    accuracies = [fold["test_accuracy"] for fold in summary["folds"].values()]
    assert summary["test_accuracy"]["mean"] == pytest.approx(np.mean(accuracies))


def test_cross_validate_refuses_a_root_holding_the_users_files(tmp_path, capsys):
    from hfspeech.cli import main as cli

    files = write_manifests(tmp_path / "data", {"all": ["ann", "bob"] * 2})
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    assert cli(["cross-validate", "--train_file", files["all"], "--group_column", "speaker", "--model_type", "cnn",
                "--output_dir", str(root)]) == 2
    assert "holds other files (notes.txt), not an earlier cross-validation" in capsys.readouterr().err
    assert os.listdir(root) == ["notes.txt"]  # no fold folder was started


def test_group_splits_do_not_depend_on_the_manifests_row_order(tmp_path):
    """Carved like `make_splits` (`in_file_order`): the same rows listed in another order trained other weights
    (max weight diff 0.362), the training split's rows reaching the model in the manifest's order."""
    files = write_manifests(tmp_path, {"all": ["ann", "bob", "cy", "dee", "eve"] * 4})
    header, *rows = Path(files["all"]).read_text().splitlines()
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([header] + [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]))
    carved = []
    for manifest in (files["all"], str(shuffled)):
        spec = DataArguments(train_file=manifest, group_column="speaker", validation_split_percentage=20,
                             test_split_percentage=20).spec()
        carved.append({name: split["audio"] for name, split in load_labelled_splits(spec, seed=3).items()})
    assert carved[0] == carved[1]
