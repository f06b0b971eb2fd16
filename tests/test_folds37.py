"""cross-validate's folds: one decoded cache of the whole manifest for every fold, and groups in natural order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import TINY_CNN
from test_distill_cv_audit import write_speaker_manifest
from hfspeech.data.columns import column_values
from hfspeech.data.dataset_columns import whole_table_keys
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.errors import UsageError
from hfspeech.training.cross_validation import drawn_folds
from hfspeech.training.fold_manifests import deal_groups, held_out_groups

NUMBERED = ["10", "2", "1"]  # sorted as strings: 1, 10, 2


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch) -> Path:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return tmp_path / "hf-datasets-cache"


def write_manifest(folder: Path, speakers: list[str], per_speaker: int = 4) -> str:
    """Short noise clips, labels yes/no alternating, `per_speaker` rows of each speaker, listed speaker by speaker."""
    return write_speaker_manifest(folder, speakers, labels=[("yes", "no")[i % 2] for i in range(per_speaker)])


def test_every_fold_selects_its_splits_from_one_table(tmp_path):
    manifest = write_manifest(tmp_path / "data", ["ann", "bob", "cy"])
    folds, _ = drawn_folds(manifest, "speaker", str(tmp_path / "cv"), 0.25, 0, label_column="label")
    keys = set()
    for fold, files in folds.items():
        source = {f"{name}_file": path for name, path in files.items()}
        spec = DataSpec(source=source, group_column="speaker", parts_of_one_table=True)
        splits = load_labelled_splits(spec, seed=0)
        alone = load_labelled_splits(DataSpec(source=source, group_column="speaker"), seed=0)
        assert whole_table_keys(alone) == {}  # a run given its manifests decodes each by itself, as before
        keys |= set(whole_table_keys(splits).values())
        assert set(whole_table_keys(splits)) == set(files)
        for name, path in files.items():  # each split its manifest's rows, in its order
            listed = [row["path"] for row in csv.DictReader(open(path))]
            assert [audio["path"] for audio in column_values(splits[name], "audio")] == listed
            assert column_values(splits[name], "label") == column_values(alone[name], "label")
        assert set(column_values(splits["test"], "group")) == {fold}
    assert len(keys) == 1, keys  # the same table, whichever fold


def test_cross_validate_decodes_the_manifest_once_and_runs_groups_in_natural_order(tmp_path, datasets_cache):
    from hfspeech.cli import main as cli

    manifest = write_manifest(tmp_path / "data", NUMBERED)
    assert cli(["cross-validate", "--train_file", manifest, "--group_column", "speaker", "--model_type", "cnn",
                "--config_overrides", TINY_CNN, "--output_dir", str(tmp_path / "cv"), "--max_steps", "1",
                "--validation_split_percentage", "25", "--save_strategy", "no", "--eval_strategy", "no",
                "--load_best_model_at_end", "False", "--disable_tqdm", "True"]) == 0
    decoded = list(datasets_cache.rglob("*.arrow"))
    assert len(decoded) == 1, decoded  # each fold decoded its three manifests: 3 folds x 3 splits = 9 files
    summary = json.loads((tmp_path / "cv" / "cross_validation.json").read_text())
    assert list(summary["folds"]) == ["1", "2", "10"] and summary["complete"]
    assert all((tmp_path / "cv" / f"fold-{group}" / "metrics.json").is_file() for group in NUMBERED)


def test_groups_are_listed_in_natural_order():
    groups = ["spk10", "10", "spk2", "1", "13", "2", "b", "a", "02"]
    folds = held_out_groups("m.csv", "speaker", groups, None, seed=0)
    assert list(folds) == ["1", "02", "2", "10", "13", "a", "b", "spk2", "spk10"]
    sizes = {str(group): 1 for group in range(1, 13)}
    dealt = deal_groups(sizes, 2, seed=0)
    assert all(held == sorted(held, key=int) for held in dealt.values()), dealt
    assert sorted(sum(dealt.values(), [])) == sorted(sizes)


def test_a_fold_trained_with_its_groups_listed_as_strings_resumes(tmp_path):
    """An earlier hfspeech wrote a dealt fold's held_out_groups.txt sorted as strings (10 before 2): the same fold, not
    another draw to refuse."""
    manifest = write_manifest(tmp_path / "data", [str(n) for n in range(1, 13)], per_speaker=2)
    out = tmp_path / "cv"
    drawn_folds(manifest, "speaker", str(out), 0.0, 0, label_column="label", num_folds=3)
    for listed in out.glob("fold-*/manifests/held_out_groups.txt"):
        listed.write_text("".join(f"{group}\n" for group in sorted(listed.read_text().split())))
        (listed.parents[1] / "config.json").write_text("{}")  # trained
    drawn_folds(manifest, "speaker", str(out), 0.0, 0, label_column="label", num_folds=3)  # not refused
    with pytest.raises(UsageError, match="trained on other"):
        drawn_folds(manifest, "speaker", str(out), 0.0, 1, label_column="label", num_folds=3)
