"""The decoded-audio cache (session 38): a warm cache that cannot be written is read, not refused; a chmod of it
keeps its key; a cached failure is decoded again alone once the decoder is mended, and the cache of a run stopped
on a bad file is kept; cross-validate's folds are parts of one table built once per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hfspeech.data.audio as audio
import hfspeech.data.cache_users as cache_users
import hfspeech.data.prepare as prepare
from conftest import write_tone_folder
from hfspeech.data.audio import AudioFileError
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.prepare import prepare_dataset
from hfspeech.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture
def decoder(monkeypatch):
    """Every clip decoded counted (`calls`), and the paths in `broken` failing as a decoder without a codec fails."""
    real, state = audio.check_audio_path, {"calls": 0, "broken": set()}

    def counted(path):
        state["calls"] += 1
        if str(path) in state["broken"]:
            raise AudioFileError(path, "cannot be decoded as audio: please install 'torchcodec'")
        return real(path)

    monkeypatch.setattr(audio, "check_audio_path", counted)
    return state


@pytest.fixture
def data(tmp_path, monkeypatch):
    """An audio folder without split folders (validation and test carved from train: one table), its listing and
    decoded audio in `tmp_path/cache`, hfspeech's own prepared files in `tmp_path/hf`."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    return root


def splits(root: Path, seed: int = 0):
    return load_labelled_splits(DataSpec(source={"data_dir": str(root), "cache_dir": str(root.parent / "cache")}),
                                seed)


def files_under(*folders: Path) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for folder in folders for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def read_only(monkeypatch):
    """`read_only(folder)`: `folder` and its subfolders made unwritable: by their modes (a user who may only read
    them), and for root, whom modes do not stop, by the answer a read-only mount gives `cache_folder_problem`."""
    made = []
    real = cache_users.cache_folder_problem

    def problem(folder):
        inside = any(Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(root)) for root in made)
        return "Read-only file system" if inside else real(folder)

    monkeypatch.setattr(cache_users, "cache_folder_problem", problem)
    monkeypatch.setattr(prepare, "cache_folder_problem", problem)

    def make(folder: Path):
        made.append(folder)
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)

    yield make
    for folder in made:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


@pytest.mark.parametrize("num_proc", [None, 2])  # 2: the cache is written as shards (`cache-..._00000_of_00002`)
def test_a_warm_cache_that_cannot_be_written_is_read(data, decoder, read_only, tmp_path, num_proc):
    """A team's decoded cache made read-only (or read by a user who may not write it) was refused: "cannot write
    the decoded audio ... set HF_DATASETS_CACHE", although every file the run needs was there."""
    first, _ = prepare_dataset(splits(data), 16000, num_proc=num_proc)
    warm, decoded = files_under(tmp_path / "cache", tmp_path / "hf"), decoder["calls"]
    read_only(tmp_path / "cache")
    read_only(tmp_path / "hf")
    again, report = prepare_dataset(splits(data, seed=1), 16000)  # another seed's draw: the same table
    assert decoder["calls"] == decoded and files_under(tmp_path / "cache", tmp_path / "hf") == warm
    assert sum(report.kept.values()) == sum(len(split) for split in first.values())
    with pytest.raises(DataError, match="cannot write the decoded audio to the datasets cache"):
        prepare_dataset(splits(data), 16000, trim=True)  # other settings: a decode to write, refused in one line


def test_a_warm_cache_whose_modes_changed_keeps_its_key(data, decoder, tmp_path):
    """`chmod -R a-w` (or a chown) of a warm cache changes its files' ctime, which keyed the table they hold: every
    clip was decoded again under a new name (and where the cache could not be written, refused)."""
    first, _ = prepare_dataset(splits(data), 16000)
    decoded = decoder["calls"]
    for path in (tmp_path / "cache").rglob("*.arrow"):
        path.chmod(0o444)
    again, _ = prepare_dataset(splits(data), 16000)
    assert decoder["calls"] == decoded
    assert {c["filename"] for s in again.values() for c in s.cache_files} == \
        {c["filename"] for s in first.values() for c in s.cache_files}


def test_cached_failures_are_decoded_again_alone_once_the_decoder_is_mended(data, decoder):
    """A skipping run read its cached failures back for good: a decoder mended later (torchcodec installed) still
    skipped them. Now only the failed rows are decoded again, in their places; a file still bad stays skipped."""
    mended, still_bad = (str(data / "low" / "low_002.wav"), str(data / "high" / "high_004.wav"))
    decoder["broken"] |= {mended, still_bad}
    first, report = prepare_dataset(splits(data), 16000, skip_bad_files=True)
    assert report.num_skipped == 2
    decoder["broken"].discard(mended)
    decoder["calls"] = 0
    raw = splits(data)
    again, report = prepare_dataset(raw, 16000, skip_bad_files=True)
    assert decoder["calls"] == 2  # the two failed rows, nothing else
    assert [entry["path"] for files in report.skipped.values() for entry in files] == [still_bad]
    for name, split in again.items():  # every clip in its split's order, the mended one in its place
        expected = [clip["path"] for clip in column_values(raw[name], "audio") if clip["path"] != still_bad]
        assert column_values(split, "path") == expected
    assert {c["filename"] for s in again.values() for c in s.cache_files} >= \
        {c["filename"] for s in first.values() for c in s.cache_files}
    decoder["calls"] = 0
    prepare_dataset(splits(data), 16000, skip_bad_files=True)
    assert decoder["calls"] == 1  # the mended clip read from disk (held in memory, decoded by every run); the bad one


def test_a_run_stopped_on_a_bad_file_keeps_the_decoded_clips_for_the_next(data, decoder):
    """A run without --skip_bad_files removed the whole decoded table when it stopped on a bad file: the next run
    decoded every good clip again (50,000 clips for one bad file)."""
    decoder["broken"].add(str(data / "low" / "low_002.wav"))
    with pytest.raises(AudioFileError, match="torchcodec"):
        prepare_dataset(splits(data), 16000)
    decoder["broken"].clear()
    decoder["calls"] = 0
    prepared, report = prepare_dataset(splits(data), 16000)
    assert decoder["calls"] == 1 and not report.skipped
    assert sum(len(split) for split in prepared.values()) == 18
    decoder["calls"] = 0
    prepare_dataset(splits(data), 16000)
    assert decoder["calls"] == 0  # the clip decoded again is read back from beside the table


def test_a_table_decoded_without_its_codec_is_decoded_once_when_it_has_it(data, decoder):
    """Every clip failed (torchcodec missing): once it is installed, the next run decodes them all and caches them
    beside the table; the run after reads them (held in memory, every later run decoded the whole table again)."""
    decoder["broken"] |= {str(path) for path in data.rglob("*.wav")}
    with pytest.raises(AudioFileError, match="and 17 more bad file"):
        prepare_dataset(splits(data), 16000)
    decoder["broken"].clear()
    decoder["calls"] = 0
    first, _ = prepare_dataset(splits(data), 16000)
    assert decoder["calls"] == 18
    second, _ = prepare_dataset(splits(data), 16000)
    assert decoder["calls"] == 18
    for name in first:
        assert column_values(second[name], "length") == column_values(first[name], "length")


def fold_splits(tmp_path: Path):
    """One fold's three splits of one manifest, as `data.labelled` reads them before `parts_of_one_table`."""
    from datasets import DatasetDict

    from conftest import write_csv_manifest

    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    clips = sorted(root.rglob("*.wav"))
    rows = [{"path": str(path), "label": path.parent.name, "speaker": f"s{i % 3}"} for i, path in enumerate(clips)]
    manifests = {name: write_csv_manifest(tmp_path / f"{name}.csv", [row for i, row in enumerate(rows) if pick(i)])
                 for name, pick in (("train", lambda i: i % 3 == 1), ("validation", lambda i: i % 3 == 2),
                                    ("test", lambda i: i % 3 == 0))}
    spec = DataSpec(source={f"{name}_file": path for name, path in manifests.items()}, group_column="speaker")
    return DatasetDict(load_labelled_splits(spec, 0))


def test_the_folds_one_table_is_taken_by_arrow_not_written_again(tmp_path, monkeypatch):
    """cross-validate's folds: `parts_of_one_table` flattened the sorted rows through a `datasets` writer (a `map`),
    which cast them again row by row: 3 s of a fold's 4 at 30,000 rows, every fold. Arrow takes them now, and the
    one table is still one key for the fold's three splits."""
    import datasets

    from hfspeech.data.dataset_columns import parts_of_one_table, whole_table_keys

    raw = fold_splits(tmp_path)
    maps, real_map = [], datasets.Dataset.map
    monkeypatch.setattr(datasets.Dataset, "map", lambda self, *a, **k: maps.append(1) or real_map(self, *a, **k))
    parts = parts_of_one_table(raw)
    keys = whole_table_keys(parts)
    assert not maps and len(set(keys.values())) == 1 and set(keys) == set(raw)
    for name, split in raw.items():  # each split its own rows, in its order
        assert column_values(parts[name], "audio") == column_values(split, "audio")
        assert column_values(parts[name], "label") == column_values(split, "label")
