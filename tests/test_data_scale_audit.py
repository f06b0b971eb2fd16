"""Data at scale, and the data items earlier audits left open.

- Preparation reads whole columns at once: datasets 4 formats a `Column` one row at a time when it is iterated
  (labels, audits, clip digests, its own stratified split), ~1 ms a clip on a loaded machine: 40 s of a
  20,000-clip run before any audio was decoded.
- Long files are written a few at a time (a batch of 100 ten-minute files held 3.8 GB), and a split held in
  memory (manifests) is decoded into the datasets cache, not into RAM, and reused on the next run.
- A datasets cache that cannot be written is one line naming the folder, not a traceback.
- A truncated MP3 (its Xing/Info header declares more frames) is an error naming the file, and an MP3 without
  that header is decoded whole (libsndfile stopped at its estimate: a fifth of a VBR clip).
- A dataset whose labels are a `ClassLabel` keeps its class order: the model's ids are the dataset's ids.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, Features
from datasets.arrow_dataset import Column

from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.labels import label_names_of
from hfspeech.data.prepare import prepare_dataset
from hfspeech.errors import DataError

RATE = 16000


def tone(seconds: float, frequency: float = 440.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.01
    return (0.3 * np.sin(2 * np.pi * frequency * t) * np.linspace(0.2, 1, t.size) + noise).astype(np.float32)


def mp3_bytes(seconds: float) -> bytes:
    """A VBR MP3 as libsndfile (LAME) writes it: with a Xing header counting its frames."""
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds), RATE, format="MP3", bitrate_mode="VARIABLE")
    return buffer.getvalue()


def write_manifest(root: Path, per_label: int, labels=("a", "b", "c")) -> Path:
    rows = []
    for number, label in enumerate(labels):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            path = root / label / f"{i}.wav"
            sf.write(path, tone(0.2, 300 + 400 * number, seed=number * 1000 + i), RATE)
            rows.append((f"{label}/{i}.wav", label))
    manifest = root / "train.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return manifest


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch) -> Path:
    import datasets

    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def test_truncated_mp3_is_an_error_naming_the_file(tmp_path):
    whole = tmp_path / "whole.mp3"
    whole.write_bytes(mp3_bytes(3.0))
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert abs(decode_audio(str(whole), RATE).size - 3 * RATE) < 0.1 * RATE
    with pytest.raises(AudioFileError, match=r"cut\.mp3: truncated MP3: header declares about 3\.\d+ s"):
        decode_audio(str(cut), RATE)
    with pytest.raises(AudioFileError, match="truncated MP3"):  # the chunked reader of `hfspeech predict`
        sum(chunk.size for chunk in iter_audio_chunks(str(cut), RATE))
    with pytest.raises(AudioFileError, match="truncated MP3"):  # bytes held by a dataset
        decode_audio({"path": None, "bytes": cut.read_bytes()}, RATE)


def test_mp3_without_frame_count_is_decoded_whole(tmp_path):
    data = mp3_bytes(2.0)
    at = data.find(b"Xing")
    headerless = data[:at] + b"\0" * 4 + data[at + 4:]  # no count: libsndfile estimated 0.38 s and stopped
    (tmp_path / "x.mp3").write_bytes(headerless)
    assert decode_audio({"path": None, "bytes": headerless}, RATE).size >= 2 * RATE
    assert sum(chunk.size for chunk in iter_audio_chunks(str(tmp_path / "x.mp3"), RATE)) >= 2 * RATE


def test_preparation_reads_columns_at_once(tmp_path, datasets_cache, monkeypatch):
    """Iterating a datasets `Column` formats one row at a time (~1 ms a clip under load); preparation must not."""
    manifest = write_manifest(tmp_path, per_label=12)
    rows_read = []
    original_iter = Column.__iter__

    def counting_iter(self):
        for value in original_iter(self):
            rows_read.append(1)
            yield value

    monkeypatch.setattr(Column, "__iter__", counting_iter)
    raw = load_labelled_splits(DataSpec(source={"train_file": str(manifest)}), seed=0)
    from hfspeech.data.clip_digests import record_training_clips

    record_training_clips(raw)
    prepare_dataset(raw, RATE)
    assert len(rows_read) == 0


def test_stratified_split_is_datasets_own():
    """The column is read at once, and the splits are still exactly those of datasets' `train_test_split`."""
    from hfspeech.data.splits import make_splits

    labels = np.random.default_rng(1).integers(0, 5, 400).tolist()
    data = Dataset.from_dict({"label": labels, "row": list(range(400))}).cast_column(
        "label", ClassLabel(names=list("abcde"))).shuffle(seed=3).select(range(300))
    ours = make_splits({"train": data}, 0.1, 0.1, seed=7)
    theirs = data.train_test_split(test_size=0.1, seed=7, stratify_by_column="label")
    assert ours["test"]["row"][:] == theirs["test"]["row"][:]
    rest = theirs["train"].train_test_split(test_size=0.1 / 0.9, seed=7, stratify_by_column="label")
    assert ours["validation"]["row"][:] == rest["test"]["row"][:]
    assert ours["train"]["row"][:] == rest["train"]["row"][:]


def test_long_files_are_written_a_few_at_a_time(tmp_path):
    from hfspeech.data.writer_batches import MAX_BATCH_BYTES, WRITER_BATCH_SIZE, writer_batch_size as _writer_batch_size

    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, tone(1.0), RATE, subtype="PCM_16")
    sf.write(long, np.zeros(60 * RATE, np.float32), RATE, subtype="PCM_16")  # a minute: 1.9 MB
    split = Dataset.from_dict({"audio": [str(short)] * 3, "label": [0] * 3}).cast_column("audio", Audio(decode=False))
    assert _writer_batch_size(split) == WRITER_BATCH_SIZE
    split = Dataset.from_dict({"audio": [str(short), str(long)], "label": [0, 0]}).cast_column(
        "audio", Audio(decode=False))
    batch = _writer_batch_size(split)
    assert 1 <= batch < WRITER_BATCH_SIZE
    assert batch * 60 * RATE * 4 <= MAX_BATCH_BYTES  # what the batch holds decoded (float32)


def test_manifest_is_prepared_on_disk_and_reused(tmp_path, datasets_cache, monkeypatch):
    manifest = write_manifest(tmp_path, per_label=6)
    spec = DataSpec(source={"train_file": str(manifest)})
    prepared, _ = prepare_dataset(load_labelled_splits(spec, seed=0), RATE)
    files = {name: split.cache_files for name, split in prepared.items()}
    assert all(files.values()) and all(Path(f[0]["filename"]).is_relative_to(datasets_cache) for f in files.values())

    import hfspeech.data.prepare as prepare

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the prepared split is in the cache")

    monkeypatch.setattr(prepare, "decode_audio", no_decoding)
    again, _ = prepare_dataset(load_labelled_splits(spec, seed=0), RATE)
    assert {name: split.cache_files for name, split in again.items()} == files
    assert again["train"]["length"][:] == prepared["train"]["length"][:]


def test_unwritable_datasets_cache_is_one_line(tmp_path, monkeypatch, capsys):
    import datasets

    from hfspeech.cli import main

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", not_a_folder / "cache")
    manifest = write_manifest(tmp_path / "data", per_label=4)
    with pytest.raises(DataError, match="cannot write the decoded audio to the datasets cache"):
        prepare_dataset(load_labelled_splits(DataSpec(source={"train_file": str(manifest)}), seed=0), RATE)
    code = main(["train", "--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "run"),
                 "--max_steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"error: {not_a_folder / 'cache'}" in err and "set HF_DATASETS_CACHE" in err


def test_classlabel_order_is_kept(tmp_path):
    """transformers' recipe takes `features["label"].names` as id2label: the same ids as the dataset's."""
    names = ["zero", "one", "two"]
    rows = {"audio": [], "label": []}
    for i in range(18):
        buffer = io.BytesIO()
        sf.write(buffer, tone(0.2, 300 + 200 * (i % 3), seed=i), RATE, format="WAV")
        rows["audio"].append({"bytes": buffer.getvalue(), "path": f"{i}.wav"})
        rows["label"].append(i % 3)
    saved = tmp_path / "saved"
    Dataset.from_dict(rows, features=Features({"audio": Audio(), "label": ClassLabel(names=names)})).save_to_disk(
        str(saved))
    splits = load_labelled_splits(DataSpec(source={"dataset_name": str(saved)}, validation_percentage=0,
                                           test_percentage=0), seed=0)
    assert label_names_of(splits["train"]) == names
    assert sorted(splits["train"]["label"][:]) == sorted(rows["label"])
