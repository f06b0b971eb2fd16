"""`--train_split_name` / `--eval_split_name` / `--test_split_name` (transformers' run_audio_classification.py
flags, and a test one) for `--dataset_name` datasets, map-style and streamed; `hfspeech evaluate --split` with
the same names; and clips held as bytes without a file name, named by dataset, split and row.

No test touches the network: the datasets are Parquet "repo clones" and save_to_disk folders written here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from hfspeech.data.audio import AudioFileError
from hfspeech.data.labelled import load_evaluation_split, load_labelled_splits
from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.prepare import DataReport, prepare_dataset
from hfspeech.data.streaming import load_streamed_data
from hfspeech.errors import DataError, UsageError
from hfspeech.training.arguments import DataArguments
from tests.test_hub_dataset_inputs import CLASSES, KINDS, parquet_repo, rows

NAMED = {"train_split_name": "training", "eval_split_name": "dev", "test_split_name": "eval"}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The Hub offline, as CI runs (HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1)."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def dataset(root: Path, kind: str, splits: dict[str, list[dict]]) -> str:
    """A local clone of a Hub dataset repo (data/<split>-00000-of-00001.parquet) or a save_to_disk folder."""
    if kind == "clone":
        return str(parquet_repo(root, splits))
    DatasetDict({name: Dataset.from_list(split, features=CLASSES) for name, split in splits.items()}).save_to_disk(root)
    return str(root)


def three_splits(per_class=(4, 2, 1)) -> dict[str, list[dict]]:
    """Splits named as some corpora name them, of 12, 6 and 3 clips with file names that say their split."""
    return {name: rows(n, path=lambda kind, i, name=name: f"{name}_{kind}_{i}.wav", seed=100 * s)
            for s, (name, n) in enumerate(zip(("training", "dev", "eval"), per_class))}


def load(streaming: bool, report=None, **flags):
    """The data stage of a training run: {role: file names} of the splits, and the report."""
    spec = DataArguments(streaming=streaming, **flags).spec()
    if not streaming:
        report = DataReport()
        data = load_labelled_splits(spec, seed=0, report=report)
        return {role: sorted(a["path"] for a in split["audio"]) for role, split in data.items()}, report
    data = load_streamed_data(spec, 16000, seed=0)
    splits = {role: sorted(split["path"]) for role, split in data.evaluation.items()}
    return {"train": sorted(e["audio"]["path"] for e in data.train), **splits}, data.report


@pytest.mark.parametrize("kind", ["clone", "saved"])
@pytest.mark.parametrize("streaming", [False, True])
def test_splits_named_otherwise_train_without_renaming(tmp_path, kind, streaming):
    name = dataset(tmp_path / "corpus", kind, three_splits())
    splits, report = load(streaming, dataset_name=name, **NAMED)
    assert {role: {Path(p).name.split("_")[0] for p in files} for role, files in splits.items()} == {
        "train": {"training"}, "validation": {"dev"}, "test": {"eval"}}
    assert {role: len(files) for role, files in splits.items()} == {"train": 12, "validation": 6, "test": 3}

    # The test split left to its default (there is no "test"): carved out of train, as before the flags.
    splits, report = load(streaming, dataset_name=name, train_split_name="training", eval_split_name="dev",
                          max_eval_samples=2)
    assert len(splits["validation"]) == 2 and {Path(p).name.split("_")[0] for p in splits["test"]} == {"training"}
    assert not set(splits["test"]) & set(splits["train"])
    assert any("split 'eval'" in note and "is not used" in note for note in report.notes)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_split_name_that_is_not_there_is_one_line_listing_the_splits(tmp_path, streaming):
    name = dataset(tmp_path / "corpus", "clone", three_splits())
    with pytest.raises(DataError, match=r"^--test_split_name nope: .*corpus has no such split; its splits: "
                                        r"\['dev', 'eval', 'training'\]$"):
        load(streaming, dataset_name=name, train_split_name="training", eval_split_name="dev", test_split_name="nope")
    with pytest.raises(DataError, match=r"corpus: training needs a train split; its splits: \['dev', 'eval', "
                                        r"'training'\] \(name it with --train_split_name"):
        load(streaming, dataset_name=name)
    with pytest.raises(UsageError, match=r"^--eval_split_name and --test_split_name both name the split 'dev'"):
        load(streaming, dataset_name=name, train_split_name="training", eval_split_name="dev", test_split_name="dev")


@pytest.mark.parametrize("streaming", [False, True])
def test_two_splits_that_could_each_be_validation_are_not_one_of_them_dropped(tmp_path, streaming):
    # 'dev' and 'eval' were both read as "validation": one of them replaced the other without a word.
    splits = three_splits()
    name = dataset(tmp_path / "corpus", "clone", {"train": splits["training"], "dev": splits["dev"],
                                                  "eval": splits["eval"]})
    with pytest.raises(DataError, match=r"corpus: the splits \['dev', 'eval'\] could each be the validation split; "
                                        r"choose one with --eval_split_name"):
        load(streaming, dataset_name=name)
    chosen, report = load(streaming, dataset_name=name, eval_split_name="eval", test_split_name="dev")
    assert {Path(p).name.split("_")[0] for p in chosen["validation"]} == {"eval"}
    assert {Path(p).name.split("_")[0] for p in chosen["test"]} == {"dev"}


def test_a_split_no_role_takes_is_not_read(tmp_path):
    # A save_to_disk folder whose extra split has no label column (an unlabelled test set): it was checked,
    # and refused the run, although no role used it.
    splits = three_splits()
    unlabelled = Dataset.from_list(splits["eval"], features=CLASSES).remove_columns("label")
    DatasetDict({"train": Dataset.from_list(splits["training"], features=CLASSES), "unlabelled": unlabelled,
                 "valid": Dataset.from_list(splits["dev"], features=CLASSES)}).save_to_disk(tmp_path / "corpus")
    chosen, report = load(False, dataset_name=str(tmp_path / "corpus"))
    assert {role: len(files) for role, files in chosen.items()} == {"train": 10, "validation": 6, "test": 2}
    assert report.found == {"train": 12, "validation": 6}
    assert [re.sub(r"^.*corpus: ", "", note) for note in report.notes] == [
        "split 'valid' is the validation split (--eval_split_name to choose another)",
        "split 'unlabelled' (3 rows) is not used (choose splits with --train_split_name, --eval_split_name, "
        "--test_split_name)"]


@pytest.mark.parametrize("streaming", [False, True])
def test_split_names_with_an_audio_folder_or_manifests_are_refused_in_one_line(tone_folder, tmp_path, streaming):
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,label\n" + "".join(f"{f},{f.parent.name}\n" for f in sorted(tone_folder.glob("*/*.wav"))))
    refused = r"^--eval_split_name dev: split names choose the splits of a --dataset_name dataset; an audio folder's"
    for source in ({"data_dir": str(tone_folder)}, {"train_file": str(manifest)}):
        with pytest.raises(UsageError, match=refused):
            load(streaming, eval_split_name="dev", **source)
        with pytest.raises(UsageError, match=refused):  # the Python API too
            load_audio_dataset(eval_split_name="dev", **source)


def test_split_names_refused_at_the_command_line_leave_no_output_folder(tone_folder, tmp_path, capsys):
    from hfspeech.cli import main

    assert main(["train", "--data_dir", str(tone_folder), "--test_split_name", "eval", "--output_dir",
                 str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --test_split_name eval: split names choose the splits")
    assert not (tmp_path / "run").exists()  # it held run_inputs.json: refused only when the data was read


def test_the_split_names_are_recorded_for_resuming_only_when_given(tmp_path):
    # A run recorded before the flags existed has no such keys in run_inputs.json: it still resumes.
    assert not any("split_name" in key for key in DataArguments(dataset_name="x").source())
    assert DataArguments(dataset_name="x", eval_split_name="dev").source()["eval_split_name"] == "dev"


def test_evaluate_split_takes_the_split_as_the_dataset_names_it(tmp_path):
    splits = three_splits()
    unlabelled = Dataset.from_list(splits["eval"], features=CLASSES).remove_columns("label")
    DatasetDict({"train": Dataset.from_list(splits["training"], features=CLASSES), "unlabelled": unlabelled,
                 "dev": Dataset.from_list(splits["dev"], features=CLASSES)}).save_to_disk(tmp_path / "corpus")
    spec = DataArguments(dataset_name=str(tmp_path / "corpus")).spec()
    for asked in ("dev", "validation"):  # `--split dev` was "no such split (splits: ['train', 'validation'])"
        report = DataReport()
        raw = load_evaluation_split(spec, list(KINDS), asked, report=report)
        assert list(raw) == ["dev"] and len(raw["dev"]) == 6
        assert report.found == {"train": 12, "unlabelled": 3, "dev": 6}  # listed; only 'dev' is read
    name = dataset(tmp_path / "both", "saved", {"train": splits["training"], "dev": splits["dev"],
                                                "eval": splits["eval"]})
    spec = DataArguments(dataset_name=name).spec()
    assert len(load_evaluation_split(spec, list(KINDS), "eval")["eval"]) == 3
    with pytest.raises(DataError, match=r"^--split validation: the splits \['dev', 'eval'\] are each a validation "
                                        r"split: name one \(splits: \['train', 'dev', 'eval'\]\)$"):
        load_evaluation_split(spec, list(KINDS), "validation")


def pathless(per_class: int, bad_rows=(), seed: int = 0) -> list[dict]:
    clips = rows(per_class, seed=seed)
    for row, clip in enumerate(clips):
        data = b"not audio %d " % row * 30 if row in bad_rows else clip["audio"]["bytes"]
        clip["audio"] = {"bytes": data, "path": None}
    return clips


@pytest.mark.parametrize("kind", ["clone", "saved"])
def test_bytes_without_a_file_name_are_named_by_dataset_split_and_row_without_streaming(tmp_path, kind):
    # Every such clip was "<audio bytes without a path>": two bad ones could not be told apart, nor found.
    name = dataset(tmp_path / "arrays", kind, {"train": pathless(3, bad_rows=(4, 7)), "validation": pathless(1)})
    spec = DataArguments(dataset_name=name, test_split_percentage=0).spec()
    raw = load_labelled_splits(spec, seed=0)
    _, report = prepare_dataset(raw, 16000, skip_bad_files=True)
    assert sorted(skipped["path"] for skipped in report.skipped["train"]) == [
        f"<audio bytes without a file name: {name} (split 'train') row {row}>" for row in (4, 7)]
    with pytest.raises(AudioFileError, match="^" + re.escape(f"<audio bytes without a file name: {name} (split "
                                                             "'train') row 4>: cannot be decoded as audio")):
        prepare_dataset(raw, 16000)


@pytest.mark.parametrize("streaming", [False, True])
def test_an_empty_audio_cell_is_one_line_naming_its_row(tmp_path, streaming):
    # A null audio cell crashed with "AttributeError: 'NoneType' object has no attribute 'get'".
    clips = rows(3)
    clips[2]["audio"] = None
    name = dataset(tmp_path / "holes", "clone", {"train": clips})
    cell = re.escape(f"<empty audio cell: {name} (split 'train') row 2>")
    if streaming:
        streamed, _ = load(True, dataset_name=name, validation_split_percentage=0, test_split_percentage=0)
        assert any(re.fullmatch(cell, path) for paths in streamed.values() for path in paths)
        return
    raw = load_labelled_splits(DataArguments(dataset_name=name).spec(), seed=0)
    with pytest.raises(AudioFileError, match=f"^{cell}: file not found \\(--skip_bad_files skips such files"):
        prepare_dataset(raw, 16000)
