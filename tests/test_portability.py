"""macOS and Windows: worker processes start with `spawn`, which pickles what they are given.

What a DataLoader worker gets (datasets, collators, the functions a stream maps) is pickled here with the
pickler `spawn` uses, and read back: a closure or a lambda fails this on Linux just as on the other systems."""

from __future__ import annotations

import ast
import io
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.test_streaming_training import write_streamed_folder


def spawn_round_trip(obj):
    """`obj` as a process started with `spawn` receives it."""
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return pickle.loads(buffer.getvalue())


def write_hub_like_folder(root):
    return write_streamed_folder(root, per_kind=6)


def test_a_streamed_hub_dataset_reaches_spawned_dataloader_workers(tmp_path):
    from hfspeech.data.streaming import load_streamed_data
    from hfspeech.training.arguments import DataArguments
    from hfspeech.training.streaming import training_stream

    folder = write_hub_like_folder(tmp_path)
    spec = DataArguments(dataset_name=str(folder), label_column_name="intent", streaming=True, class_names="low,high",
                         shuffle_buffer_size=4, max_eval_samples=2).spec()
    data = load_streamed_data(spec, 16000, seed=0)
    stream = training_stream(data.train, data.exact_train_rows, num_workers=2)

    received = spawn_round_trip(stream)  # held-out filter, reference and label maps included

    rows = [(example["audio"]["path"], example["label"]) for example in received]
    assert rows == [(example["audio"]["path"], example["label"]) for example in stream]
    assert len(rows) == 12 - 4 and {label for _, label in rows} == {0, 1}


TEXT_FILE_CALLS = {"open", "read_text", "write_text"}


def text_files_opened_without_an_encoding(source: str) -> list[int]:
    """Lines of `source` that open a text file in the system's encoding: `open(path)` in a text mode, or
    `Path.read_text()` / `write_text()`, without `encoding=`. `os.open` and other modules' `open` are not files'."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or any(keyword.arg == "encoding" for keyword in node.keywords):
            continue
        function = node.func
        if isinstance(function, ast.Name) and function.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (keyword.value for keyword in node.keywords if keyword.arg == "mode"), None)
            if not (isinstance(mode, ast.Constant) and "b" in str(mode.value)):
                lines.append(node.lineno)
        elif isinstance(function, ast.Attribute) and function.attr in {"read_text", "write_text"}:
            lines.append(node.lineno)
    return lines


def test_text_files_are_read_and_written_as_utf8():
    """Windows reads and writes text in its ANSI code page (cp1252) when no encoding is given: a label or path
    outside it (`日本語`, `Ł`) failed to write, and one inside it (`é`) was written in bytes that every UTF-8
    reader of the file (datasets, the CSV manifests hfspeech reads back) decoded as other characters."""
    package = Path(__file__).resolve().parents[1] / "hfspeech"
    found = [f"{path.relative_to(package.parent)}:{line}" for path in sorted(package.rglob("*.py"))
             for line in text_files_opened_without_an_encoding(path.read_text(encoding="utf-8"))]
    assert found == []
    assert text_files_opened_without_an_encoding("open(p)\nopen(p, 'rb')\nPath(p).write_text(s)\n") == [1, 3]


def test_timelines_of_files_whose_names_differ_only_in_case_are_kept_apart():
    """macOS and Windows file names ignore case: `a/Yes.wav`'s timeline was replaced by `b/yes.wav`'s there."""
    from hfspeech.cli.predict import timeline_stems

    stems = timeline_stems(["a/Yes.wav", "b/yes.wav", "c/YES.flac", "d/no.wav"])

    assert stems == {"a/Yes.wav": ["Yes"], "b/yes.wav": ["yes-2"], "c/YES.flac": ["YES-3"], "d/no.wav": ["no"]}


def test_cross_validation_refuses_groups_whose_fold_folders_differ_only_in_case(tmp_path):
    """fold-Ann and fold-ann are one folder on macOS and Windows: the second fold replaced the first's manifests."""
    from hfspeech.errors import DataError
    from hfspeech.training.cross_validation import write_fold_manifests

    manifest = tmp_path / "all.csv"
    rows = [(f"clip{i}.wav", "yes", speaker) for i, speaker in enumerate(["Ann", "bob", "ann", "bob"])]
    manifest.write_text("path,label,speaker\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")

    with pytest.raises(DataError, match=r"row 3: speaker 'ann' and 'Ann' differ only in case"):
        write_fold_manifests(str(manifest), "speaker", str(tmp_path / "cv"), 0.0, seed=0)
    assert not (tmp_path / "cv").exists()


def test_more_dataloader_workers_than_stream_shards_train_on_every_clip():
    """A Hub-style stream of one file has one shard: the second of `--dataloader_num_workers 2` reads nothing,
    and its empty pass stopped training with "the training stream has no clips"."""
    import torch
    from datasets import Dataset

    from hfspeech.training.streaming import training_stream

    stream = Dataset.from_dict({"clip": list(range(6))}).to_iterable_dataset(num_shards=1)
    loader = torch.utils.data.DataLoader(training_stream(stream, None, num_workers=2), batch_size=None, num_workers=2)

    assert sorted(int(row["clip"]) for row in loader) == list(range(6))


def test_a_streamed_manifest_reaches_each_spawned_worker_once_not_once_a_shard(tmp_path):
    """`--streaming` from a manifest: every shard of the stream carried the whole in-memory index, so a worker
    started with `spawn` was sent it once a shard (256 times for a large manifest), every epoch."""
    from hfspeech.data.streaming import load_streamed_data
    from hfspeech.training.arguments import DataArguments

    rows = []
    for i in range(60):
        sf.write(tmp_path / f"clip{i}.wav", np.zeros(160, np.float32), 16000)
        rows.append(f"{tmp_path / f'clip{i}.wav'},{'yes' if i % 2 else 'no'}\n")
    (tmp_path / "all.csv").write_text("path,label\n" + "".join(rows), encoding="utf-8")
    data = load_streamed_data(DataArguments(train_file=str(tmp_path / "all.csv"), streaming=True).spec(), 16000, 0)

    index_bytes = len(pickle.dumps(rows))
    assert data.train.num_shards == data.num_train_rows > 1
    assert len(pickle.dumps(data.train)) < 8 * index_bytes
    received = spawn_round_trip(data.train)
    assert [row["audio"]["path"] for row in received] == [row["audio"]["path"] for row in data.train]
    assert len({row["audio"]["path"] for row in received}) == data.num_train_rows
