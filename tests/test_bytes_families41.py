"""Datasets that hold their audio as bytes (a Parquet clone of a Hub dataset), session 41: each change to the dataset
left the previous decoding for good (every decoding of such a split was its own family, keyed by the split's
fingerprint, and its content ""), and a bad row was named only by its stored file name (`audio.flac`, every row's)."""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features

import hfspeech.data.cache_users as cache_users
from hfspeech.data.audio import AudioFileError
from hfspeech.data.decoded_caches import decoded_family
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.prepare import prepare_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

FEATURES = Features({"audio": Audio(), "label": ClassLabel(names=["low", "high"])})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The datasets cache in `tmp_path/hf` (the builders' copies, their decodings, hfspeech's records), and this
    test's own cache-folder locks."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    held = OrderedDict()
    monkeypatch.setattr(cache_users, "_held", held)
    yield tmp_path / "hf"
    for handle in held.values():
        if handle is not None:
            os.close(handle)


def flac(frequency: float) -> bytes:
    tone = np.sin(2 * np.pi * frequency * np.arange(1600) / 8000).astype(np.float32) * 0.5
    encoded = io.BytesIO()
    sf.write(encoded, tone, 8000, format="FLAC")
    return encoded.getvalue()


def write_split(folder: Path, split: str, clips: list[bytes], name: str = "audio.flac") -> None:
    """A split as `push_to_hub` writes it: `data/<split>-00000-of-00001.parquet`, the audio as bytes under a stored
    file name (here every row's), a ClassLabel."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = [{"audio": {"bytes": clip, "path": name}, "label": row % 2} for row, clip in enumerate(clips)]
    Dataset.from_list(rows, features=FEATURES).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))


def write_dataset(folder: Path, train_tones=(200, 400, 300, 500, 250, 450), bad_row=None) -> Path:
    clips = [b"not audio at all" * 20 if row == bad_row else flac(tone) for row, tone in enumerate(train_tones)]
    write_split(folder, "train", clips)
    write_split(folder, "validation", [flac(220), flac(440)])
    write_split(folder, "test", [flac(230), flac(460)])
    return folder


def prepared(folder: Path, **flags) -> DatasetDict:
    spec = DataSpec(source={"dataset_name": str(folder)})
    return prepare_dataset(load_labelled_splits(spec, 0), 8000, **flags)[0]


def decodings(cache: Path) -> set[str]:
    """The decoded tables in the cache (Arrow files with an `input_values` column), by path."""
    found = set()
    for path in cache.rglob("cache-*.arrow"):
        with open(path, "rb") as stream:
            if "input_values" in pa.ipc.open_stream(stream).schema.names:
                found.add(str(path))
    return found


def rewritten(folder: Path, tones) -> None:
    """One clip's bytes changed in the train shard, its times moved on (a new version of the dataset)."""
    shard = folder / "data" / "train-00000-of-00001.parquet"
    before = shard.stat().st_mtime_ns
    write_split(folder, "train", [flac(tone) for tone in tones])
    os.utime(shard, ns=(before + 10**9, before + 10**9))


def test_a_new_version_of_a_datasets_bytes_supersedes_its_decodings(cache, tmp_path):
    folder = write_dataset(tmp_path / "pb")
    prepared(folder)
    first = decodings(cache)
    assert len(first) == 3  # train, validation and test
    prepared(folder)  # warm: the same decodings read back, none removed
    assert decodings(cache) == first
    rewritten(folder, (200, 400, 300, 500, 250, 470))
    prepared(folder)
    now = decodings(cache)
    assert len(now) == 3 and not now & first  # every split's earlier version removed (the builder's copy moved on)


def test_two_datasets_of_one_folder_name_keep_their_decodings(cache, tmp_path):
    """datasets names a local folder by its last name only: `a/pb` and `b/pb` share `<cache>/pb/`."""
    first = write_dataset(tmp_path / "a" / "pb")
    second = write_dataset(tmp_path / "b" / "pb", train_tones=(210, 410, 310, 510, 260, 460))
    prepared(first)
    prepared(second)
    both = decodings(cache)
    assert len(both) == 6
    prepared(first)
    assert decodings(cache) == both


def test_two_label_columns_of_one_version_keep_their_decodings(cache, tmp_path):
    """The same bytes read with another label column (encoded into a table of its own beside the builder's): another
    route to the same version, kept while used (`UNUSED_DECODER_DAYS`), not removed by each other in turn."""
    folder = tmp_path / "pb"
    (folder / "data").mkdir(parents=True)
    features = Features({**FEATURES, "mood": ClassLabel(names=["low", "high"])})
    rows = [{"audio": {"bytes": flac(200 + 50 * row), "path": "audio.flac"}, "label": row % 2, "mood": row // 3 % 2}
            for row in range(6)]
    for split in ("train", "validation", "test"):
        Dataset.from_list(rows, features=features).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    for column in ("label", "mood", "label"):
        prepare_dataset(load_labelled_splits(DataSpec(source={"dataset_name": str(folder), "label_column": column}),
                                             0), 8000)
    assert len(decodings(cache)) == 6


def test_a_dataset_built_in_python_keeps_the_fingerprint_as_its_family(cache, tmp_path):
    """No stable source is known for a split built in Python (held in memory): each decoding its own family, as
    before; a split loaded from a folder has one family across its versions."""
    rows = {"audio": [{"bytes": flac(300), "path": "audio.flac"}] * 2, "label": [0, 1]}
    built = Dataset.from_dict(rows, features=FEATURES).cast_column("audio", Audio(decode=False))
    other = Dataset.from_dict({**rows, "label": [1, 0]}, features=FEATURES).cast_column("audio", Audio(decode=False))
    features = built.features
    assert decoded_family(built, [8000], features) != decoded_family(other, [8000], features)
    folder = write_dataset(tmp_path / "pb")
    before = load_labelled_splits(DataSpec(source={"dataset_name": str(folder)}), 0)["train"]
    rewritten(folder, (200, 400, 300, 500, 250, 470))
    after = load_labelled_splits(DataSpec(source={"dataset_name": str(folder)}), 0)["train"]
    assert before._fingerprint != after._fingerprint
    assert decoded_family(before, [8000], before.features) == decoded_family(after, [8000], after.features)


@pytest.mark.parametrize("split, bad_row, carved", [("train", 3, False), ("test", 1, False), ("train", 0, True)])
def test_a_bad_clip_held_as_bytes_is_named_by_its_split_and_row(cache, tmp_path, split, bad_row, carved):
    """Every row's stored name is `audio.flac`: the row says which. Carved: validation cut from train (seed 0 leaves
    row 0 in train), decoded as the whole train table and selected from it."""
    folder = write_dataset(tmp_path / "dup", bad_row=bad_row if split == "train" else None)
    if split == "test":
        write_split(folder, "test", [flac(230), b"not audio at all" * 20])
    if carved:
        (folder / "data" / "validation-00000-of-00001.parquet").unlink()
    for _ in ("cold", "warm"):  # warm: read back from the cache, its failed row decoded again
        with pytest.raises(AudioFileError) as raised:
            prepared(folder)
        assert raised.value.path == f"audio.flac ({split} row {bad_row})"


def test_a_one_row_carve_of_a_clone_prepares(cache, tmp_path):
    """Validation carved from 6 train rows is one row, which datasets takes as a slice of numpy ints: its family
    key ended on "Object of type int64 is not JSON serializable", a traceback (reviewer R4)."""
    folder = write_dataset(tmp_path / "carved")
    (folder / "data" / "validation-00000-of-00001.parquet").unlink()
    for _ in ("cold", "warm"):
        dataset = prepared(folder)
        assert sorted(len(split) for split in dataset.values()) == [1, 2, 5]
