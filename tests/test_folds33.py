"""Cross-validation's validation rows drawn stratified by label, as `hfspeech train` draws its own, and the groups
of each split said in the log and `data_report.json`."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

from hfspeech.data.groups import GROUP_COLUMN
from hfspeech.data.labelled import load_labelled_splits
from hfspeech.data.prepare import DataReport
from hfspeech.data.split_audit import audit_splits
from hfspeech.training.arguments import DataArguments
from hfspeech.training.cross_validation import fold_rows, write_fold_manifests
from tests.conftest import write_csv_manifest

EMOTIONS = {"neutral": 20, "happy": 8, "angry": 4, "sad": 2}  # per speaker: the audit's 10:4:2:1 stand-in
SPEAKERS = ("george", "jackson", "lucas", "nicolas")


def emotion_rows() -> list[dict]:
    return [{"path": f"{speaker}_{label}_{i:02d}.wav", "label": label, "speaker": speaker}
            for speaker in SPEAKERS for label, n in EMOTIONS.items() for i in range(n)]


def read_labels(path: str) -> Counter:
    with open(path, encoding="utf-8") as handle:
        return Counter(row["label"] for row in csv.DictReader(handle))


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_every_folds_validation_holds_every_class_with_two_clips_outside_its_group(tmp_path, seed):
    rows = emotion_rows()
    manifest = write_csv_manifest(tmp_path / "all.csv", rows)
    folds = write_fold_manifests(manifest, "speaker", str(tmp_path / "cv"), 0.1, seed, label_column="label")
    for speaker, files in folds.items():
        outside = Counter(row["label"] for row in rows if row["speaker"] != speaker)
        expected = {label for label, n in outside.items() if n >= 2}
        assert set(read_labels(files["validation"])) >= expected, speaker


def test_stratified_folds_keep_the_test_groups_and_every_row_once():
    rng = np.random.default_rng(0)
    groups = [f"s{g}" for g in rng.integers(0, 5, 300)]
    labels = [{["a", "b", "c"][k]} for k in rng.choice(3, 300, p=[0.7, 0.2, 0.1])]
    plain, stratified = fold_rows(groups, 0.2, 3), fold_rows(groups, 0.2, 3, labels=labels)
    assert list(plain) == list(stratified)
    for group, parts in stratified.items():
        assert parts["test"] == plain[group]["test"]
        rest = plain[group]["train"] + plain[group]["validation"]
        assert sorted(parts["train"] + parts["validation"]) == sorted(rest)
        assert parts["train"] == sorted(parts["train"]) and parts["validation"] == sorted(parts["validation"])
        outside = Counter(next(iter(labels[i])) for i in parts["train"] + parts["validation"])
        drawn = Counter(next(iter(labels[i])) for i in parts["validation"])
        for label, n in outside.items():  # each class's share of validation is its share of the rows outside
            assert abs(drawn[label] - 0.2 * n) <= 1, (group, label)


def test_multi_label_folds_are_drawn_by_the_rarest_label_as_train_draws_them(tmp_path):
    # "siren" only ever comes with "dog": a plain draw of 2 clips in 20 usually missed it in some fold
    rows = [{"path": f"{speaker}_{i:02d}.wav", "label": "dog;siren" if i < 4 else "dog", "speaker": speaker}
            for speaker in ("a", "b", "c") for i in range(10)]
    manifest = write_csv_manifest(tmp_path / "all.csv", rows)
    for seed in range(4):
        folds = write_fold_manifests(manifest, "speaker", str(tmp_path / f"cv{seed}"), 0.1, seed,
                                     label_column="label", label_separator=";")
        for speaker, files in folds.items():
            assert read_labels(files["validation"])["dog;siren"] >= 1, (seed, speaker)


def write_clips(folder: Path, speakers: list[str]) -> str:
    """A manifest of short noise clips, two labels, one speaker per row."""
    rng = np.random.default_rng(0)
    rows = []
    for i, speaker in enumerate(speakers):
        path = folder / f"{speaker}-{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(800)).astype(np.float32), 16000)
        rows.append({"path": path.name, "label": ["yes", "no"][i % 2], "speaker": speaker})
    return write_csv_manifest(folder / "all.csv", rows)


def test_a_grouped_run_names_each_splits_groups_in_the_log_and_the_data_report(tmp_path, caplog):
    speakers = [f"spk{g}" for g in range(8) for _ in range(4)]
    args = DataArguments(train_file=write_clips(tmp_path, speakers), group_column="speaker",
                         validation_split_percentage=20, test_split_percentage=20)
    report = DataReport()
    with caplog.at_level(logging.INFO, logger="hfspeech.data"):
        splits = load_labelled_splits(args.spec(), seed=0, report=report)
    lines = [r.getMessage() for r in caplog.records if "groups per split" in r.getMessage()]
    notes = [note for note in report.to_dict()["notes"] if note.startswith("groups per split")]
    assert len(lines) == 1 and notes == [lines[0].removeprefix("data: ")]
    for name, split in splits.items():
        groups = sorted(set(split[GROUP_COLUMN]))
        assert f"{name} {len(groups)} ({', '.join(groups)})" in notes[0]


def test_thousands_of_groups_are_counted_and_the_first_named():
    def split(groups: list[str]) -> Dataset:
        return Dataset.from_dict({"audio": [f"/nowhere/{g}.wav" for g in groups], "label": [0] * len(groups),
                                  GROUP_COLUMN: groups},
                                 features=Features({"audio": Audio(decode=False), "label": ClassLabel(names=["a"]),
                                                    GROUP_COLUMN: Value("string")}))

    report = DataReport()
    audit_splits(DatasetDict(train=split([f"s{g:04d}" for g in range(2000)]), test=split(["t1", "t0"])), report)
    note = next(note for note in report.notes if note.startswith("groups per split"))
    assert "train 2000 (s0000, s0001," in note and "and 1980 more" in note and "s1999" not in note
    assert note.endswith("test 2 (t0, t1)") and len(note) < 400


def test_folds_an_earlier_run_trained_on_other_draws_are_refused_not_mixed(tmp_path):
    """A cross-validate resumed after the draw changed (an earlier hfspeech's random validation draws) rewrote the
    fold manifests: a finished fold kept its model beside a new validation.csv, and the summary said complete
    (upgrade audit). A fold that trained on other manifests is refused before anything is written."""
    from hfspeech.errors import UsageError

    manifest, out = write_csv_manifest(tmp_path / "all.csv", emotion_rows()), tmp_path / "cv"
    earlier = write_fold_manifests(manifest, "speaker", str(out), 0.1, 0, label_column="label")
    (out / "fold-george" / "config.json").write_text("{}")  # fold george trained
    before = {name: Path(path).read_text() for name, path in earlier["george"].items()}
    assert write_fold_manifests(manifest, "speaker", str(out), 0.1, 0, label_column="label") == earlier  # same draw
    with pytest.raises(UsageError, match="fold george trained on other (train|validation) clips than the folds drawn"):
        write_fold_manifests(manifest, "speaker", str(out), 0.1, 1, label_column="label")  # another draw
    assert {name: Path(path).read_text() for name, path in earlier["george"].items()} == before
