"""`--dataset_name` for a Hub dataset or a local clone of one (a folder of Parquet files), with and without
`--streaming`: the mistakes a user can make are one line naming the flag or the row, and no clip is lost.

No test touches the network: the datasets are Parquet folders written here, and the Hub is offline.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, Features, List, Value

from hfspeech.data.audio import AudioFileError, decode_audio
from hfspeech.data.labelled import load_labelled_splits
from hfspeech.data.streaming import load_streamed_data
from hfspeech.errors import DataError
from hfspeech.training.arguments import DataArguments
from hfspeech.training.streaming import PassCounter, TrainingStream
from tests.conftest import synth_clip

KINDS = ["low", "high", "noise"]
CLASSES = Features({"audio": Audio(), "label": ClassLabel(names=KINDS)})


def wav_bytes(kind: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, synth_clip(kind, np.random.default_rng(seed), 16000, 0.2), 16000, format="WAV")
    return buffer.getvalue()


def rows(per_class: int, path=lambda kind, i: f"{kind}_{i}.wav", seed: int = 0) -> list[dict]:
    return [{"audio": {"bytes": wav_bytes(kind, seed + 100 * c + i), "path": path(kind, i)}, "label": c}
            for c, kind in enumerate(KINDS) for i in range(per_class)]


def parquet_repo(root: Path, splits: dict[str, list[dict]], features: Features = CLASSES) -> Path:
    """A folder laid out like a cloned Hub dataset repo: data/<split>-00000-of-00001.parquet."""
    (root / "data").mkdir(parents=True)
    for split, split_rows in splits.items():
        Dataset.from_list(split_rows, features=features).to_parquet(root / "data" / f"{split}-00000-of-00001.parquet")
    return root


def load(streaming: bool, **flags):
    """The data stage of a training run, map-style or streamed."""
    spec = DataArguments(streaming=streaming, **flags).spec()
    return load_streamed_data(spec, 16000, seed=0) if streaming else load_labelled_splits(spec, seed=0)


@pytest.fixture
def offline(monkeypatch):
    """The Hub offline, as CI runs (HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1)."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_dataset_name_that_is_not_there_is_one_line_naming_the_flag(offline, tmp_path, streaming):
    with pytest.raises(DataError, match=r"^--dataset_name nobody/no-such-dataset: no such folder, and the Hub "
                                        r"cannot be reached \(HF_HUB_OFFLINE"):
        load(streaming, dataset_name="nobody/no-such-dataset")
    with pytest.raises(DataError, match=r"^--dataset_name \./no_such_folder: folder not found$"):
        load(streaming, dataset_name="./no_such_folder")
    repo = parquet_repo(tmp_path / "repo", {"train": rows(1)})
    parquet = str(repo / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"^--dataset_name .*train-00000-of-00001.parquet: a file, not a dataset"):
        load(streaming, dataset_name=parquet)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_missing_or_unknown_configuration_lists_the_configurations(offline, tmp_path, streaming):
    repo = tmp_path / "two_configs"
    for config in ("en", "de"):
        (repo / config).mkdir(parents=True)
        Dataset.from_list(rows(2), features=CLASSES).to_parquet(repo / config / "train.parquet")
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(
        f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train.parquet\n" for c in ("en", "de"))
        + "---\n")
    with pytest.raises(DataError, match=r"has several configurations; choose one with --dataset_config_name "
                                        r"\['en', 'de'\]$"):
        load(streaming, dataset_name=str(repo))
    with pytest.raises(DataError, match=r"^--dataset_config_name fr: .*two_configs has no such configuration "
                                        r"\(available: \['en', 'de'\]\)$"):
        load(streaming, dataset_name=str(repo), dataset_config_name="fr")


@pytest.mark.parametrize("streaming", [False, True])
def test_a_folder_with_no_data_files_or_a_loading_script_is_one_line(offline, tmp_path, streaming):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"^--dataset_name .*empty: .*doesn't contain any data files"):
        load(streaming, dataset_name=str(tmp_path / "empty"))
    (tmp_path / "scripted").mkdir()
    (tmp_path / "scripted" / "scripted.py").write_text("import datasets\n")
    with pytest.raises(DataError, match=r"^--dataset_name .*scripted: .*scripts are no longer supported.*runs no "
                                        r"loading scripts"):
        load(streaming, dataset_name=str(tmp_path / "scripted"))


def test_held_out_clips_keep_out_of_training_without_taking_rows_that_share_their_file_name(offline, tmp_path):
    # Hub datasets often give many rows the same file name; held-out clips were filtered out of the training
    # stream by name, which dropped every row (training then ran on nothing and reported success).
    repo = parquet_repo(tmp_path / "same_names", {"train": rows(6, path=lambda kind, i: "audio.wav")})
    data = load(True, dataset_name=str(repo), max_eval_samples=2)
    assert {name: len(split) for name, split in data.evaluation.items()} == {"validation": 2, "test": 2}
    train = list(data.train)
    assert len(train) == 18 - 4
    eval_waves = [tuple(np.round(w[:50], 4)) for split in data.evaluation.values() for w in split["input_values"]]
    train_waves = {tuple(np.round(decode_audio(e["audio"], 16000)[:50], 4)) for e in train}
    assert not set(eval_waves) & train_waves


def test_bytes_without_a_file_name_are_named_by_dataset_split_and_row(offline, tmp_path):
    train, validation = rows(3), rows(1, seed=50)
    for i, row in enumerate(train):
        row["audio"]["path"] = None
    train[4]["audio"]["bytes"] = b"not audio at all" * 20
    repo = parquet_repo(tmp_path / "from_arrays", {"train": train, "validation": validation, "test": rows(1, seed=60)})
    data = load(True, dataset_name=str(repo))
    named = {e["audio"]["path"]: e for e in data.train}
    bad = f"<audio bytes without a file name: {repo} (split 'train') row 4>"
    assert len(named) == 9 and bad in named
    with pytest.raises(AudioFileError, match="^" + re.escape(bad) + ": cannot be decoded as audio"):
        decode_audio(named[bad]["audio"], 16000)

    validation[1]["audio"] = {"bytes": b"not audio at all" * 20, "path": None}
    repo = parquet_repo(tmp_path / "bad_validation", {"train": rows(2), "validation": validation})
    with pytest.raises(AudioFileError, match=r"bad_validation \(split 'validation'\) row 1>: cannot be decoded"):
        load(True, dataset_name=str(repo), max_eval_samples=5)


def test_a_training_stream_with_no_clips_left_is_an_error(offline, tmp_path):
    repo = parquet_repo(tmp_path / "tiny", {"train": rows(1)})  # 3 clips (Parquet footer): 2 + 1 held out
    data = load(True, dataset_name=str(repo), validation_split_percentage=50, test_split_percentage=40)
    with pytest.raises(DataError, match="the training stream has no clips: every clip of the train split was held out"):
        list(TrainingStream(data.train))
    data = load(True, dataset_name=str(repo), max_eval_samples=1)
    assert len(list(TrainingStream(data.train))) == 1


@pytest.mark.parametrize("trainer_epoch, passes", [(1.0, 1.0), (0.25, 1.0), (1.2, 2.0), (4.2, 5.0), (2.0, 2.0)])
def test_the_logged_epoch_counts_passes_over_the_stream(trainer_epoch, passes):
    from transformers import TrainerControl, TrainerState

    state = TrainerState(epoch=trainer_epoch)  # the Trainer's epoch after a pass: passes - 1 + its share of max_steps
    PassCounter().on_epoch_end(None, state, TrainerControl())
    assert state.epoch == passes


def test_a_labels_column_is_found_and_label_lists_are_refused_in_one_line(offline, tmp_path):
    multi = Features({"audio": Audio(), "labels": List(ClassLabel(names=KINDS))})
    repo = parquet_repo(tmp_path / "multi", {"train": [{"audio": r["audio"], "labels": [r["label"]]} for r in rows(2)]},
                        features=multi)
    with pytest.raises(DataError, match=r"the label column 'labels' holds a list per clip \(multi-label data\)"):
        load(True, dataset_name=str(repo), max_eval_samples=1)
    tags = Features({"audio": Audio(), "tags": List(Value("string"))})
    repo = parquet_repo(tmp_path / "tags", {"train": [{"audio": r["audio"], "tags": ["low"]} for r in rows(2)]},
                        features=tags)
    with pytest.raises(DataError, match=r"^low_\d\.wav: the label is a list \['low'\] in split 'train' "
                                        r"\(multi-label data\)"):  # when the held-out clips are read
        load(True, dataset_name=str(repo), label_column_name="tags", class_names="low,high", max_eval_samples=1)


def test_an_evaluation_split_datasets_cannot_read_is_one_line_naming_it(offline, tmp_path):
    # datasets reads every split of a folder of data files with the first split's features: here a class id
    # the training ClassLabel does not have.
    two = Features({"audio": Audio(), "label": ClassLabel(names=["low", "high"])})
    repo = tmp_path / "other_classes"
    parquet_repo(repo, {"train": [r for r in rows(2) if r["label"] < 2]}, features=two)
    Dataset.from_list(rows(1), features=CLASSES).to_parquet(repo / "data" / "validation-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"other_classes \(split 'validation'\): cannot be read: .*[Cc]lass label 2"):
        load(True, dataset_name=str(repo), test_split_percentage=0)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_data_file_with_other_columns_is_one_line_naming_the_columns(offline, tmp_path, streaming):
    repo = parquet_repo(tmp_path / "mixed", {"validation": rows(1, seed=70), "test": rows(1, seed=80)})
    Dataset.from_list(rows(2), features=CLASSES).to_parquet(repo / "data" / "train-00000-of-00002.parquet")
    Dataset.from_list([{"file": "a.wav", "label": "low"}]).to_parquet(repo / "data" / "train-00001-of-00002.parquet")
    columns = r"a data file has the columns \['file', 'label'\], the dataset \['audio', 'label'\]"
    if not streaming:
        with pytest.raises(DataError, match=rf"^--dataset_name .*mixed: {columns}"):
            load(False, dataset_name=str(repo))
        return
    data = load(True, dataset_name=str(repo))  # the training files are first read by the Trainer
    with pytest.raises(DataError, match=rf"^the training stream: cannot be read: {columns}"):
        list(TrainingStream(data.train))


def test_a_bad_clip_or_an_empty_stream_in_a_dataloader_worker_is_the_same_one_line(offline, tmp_path):
    # torch re-raised a worker's AudioFileError as a RuntimeError holding the worker's traceback (a
    # traceback at the command line), and a DataError with that traceback in its message.
    from torch.utils.data import DataLoader

    train = rows(2)
    train[3]["audio"] = {"bytes": b"not audio at all" * 20, "path": "broken.wav"}
    repo = parquet_repo(tmp_path / "bad_clip", {"train": train, "validation": rows(1, seed=70),
                                                "test": rows(1, seed=80)})
    data = load(True, dataset_name=str(repo))
    loader = DataLoader(TrainingStream(data.train), batch_size=6, num_workers=1,
                        collate_fn=data.collator(lambda examples: examples, 16000, None))
    with pytest.raises(AudioFileError) as error:
        list(loader)
    assert str(error.value).startswith("broken.wav: cannot be decoded as audio") and "\n" not in str(error.value)
    assert error.value.path == "broken.wav"

    tiny = parquet_repo(tmp_path / "tiny", {"train": rows(1)})
    data = load(True, dataset_name=str(tiny), validation_split_percentage=50, test_split_percentage=40)
    with pytest.raises(DataError, match=r"^the training stream has no clips: [^\n]*$"):
        list(DataLoader(TrainingStream(data.train), batch_size=2, num_workers=1, collate_fn=lambda e: e))


@pytest.mark.parametrize("streaming", [False, True])
def test_a_missing_column_names_the_flags_that_name_columns(offline, tmp_path, streaming):
    other = Features({"sound": Audio(), "label": ClassLabel(names=KINDS)})
    repo = parquet_repo(tmp_path / "other", {"train": [{"sound": r["audio"], "label": r["label"]} for r in rows(2)]},
                        features=other)
    with pytest.raises(DataError, match=r"missing column\(s\) \['audio'\]; available columns: \['sound', 'label'\] "
                                        r"\(name them with --audio_column_name / --label_column_name\)"):
        load(streaming, dataset_name=str(repo), max_eval_samples=1)
