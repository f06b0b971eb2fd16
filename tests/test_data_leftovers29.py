"""Leftovers of the scale and cache audits in the data stage: leave-one-group-out folds without a `Dataset.select`
per group, a streamed dataset's evaluation rows written to Arrow as they are read (not held in lists, then copied),
and `pos_weight` from label counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from datasets import Audio, ClassLabel, Dataset, Features, IterableDataset
from huggingface_hub import constants

from test_hub_dataset_inputs import load, parquet_repo, rows
from hfspeech.data.hub_stream import _hold_out
from hfspeech.data.run_scratch import RUN_SCRATCH, run_scratch_folder
from hfspeech.data.stream_draws import KEY_COLUMN
from hfspeech.errors import OutputWriteError
from hfspeech.models.losses import pos_weight_from_counts, pos_weight_from_frequencies
from hfspeech.training.cross_validation import fold_rows


def folds_one_select_per_group(groups, validation_fraction, seed, row_order=None):
    """The folds as `fold_rows` made them before, with plain lists: the reference their rows and order keep."""
    row_order = list(range(len(groups)) if row_order is None else row_order)
    rng = np.random.default_rng(seed)
    folds = {}
    for group in sorted(set(groups)):
        rest = [r for r in row_order if groups[r] != group]
        order = rng.permutation(len(rest))
        size = int(round(validation_fraction * len(rest)))
        if validation_fraction > 0:
            size = min(max(1, size), len(rest) - 1)
        validation = {rest[i] for i in order[:size]}
        folds[group] = {"train": [r for r in rest if r not in validation],
                        "validation": [r for r in rest if r in validation],
                        "test": [r for r in row_order if groups[r] == group]}
    return folds


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("validation_fraction", [0.0, 0.1, 0.3])
def test_fold_rows_keep_every_folds_rows_and_order(seed, validation_fraction):
    rng = np.random.default_rng(seed)
    groups = [f"speaker{g}" for g in rng.integers(0, 5 + seed, 120)]
    for row_order in (None, rng.permutation(len(groups)).tolist()):
        made = fold_rows(groups, validation_fraction, seed, row_order)
        expected = folds_one_select_per_group(groups, validation_fraction, seed, row_order)
        assert made == expected and list(made) == list(expected)


def test_fold_rows_select_no_dataset_rows_per_group(monkeypatch):
    # one `Dataset.select` per fold and side: 40k rows in 100 groups took 22 s
    selects = []
    select = Dataset.select
    monkeypatch.setattr(Dataset, "select", lambda self, *args, **kwargs: selects.append(1) or select(
        self, *args, **kwargs))
    folds = fold_rows([f"g{i % 30}" for i in range(600)], 0.1, seed=0)
    assert len(folds) == 30 and selects == []


def held_out_stream(clips: int, clip_bytes: int) -> IterableDataset:
    """A streamed train split as `data.hub_stream` holds it (audio reference, label id, clip key); every clip's
    bytes are made as the stream reaches it, so nothing but what the reader keeps stays in memory."""
    def generate(clips, clip_bytes):
        for i in range(clips):
            data = np.random.default_rng(i).bytes(clip_bytes)
            yield {"audio": {"path": f"clip{i}.wav", "bytes": data}, "label": i % 3, KEY_COLUMN: f"key{i}"}

    return IterableDataset.from_generator(generate, gen_kwargs={"clips": clips, "clip_bytes": clip_bytes})


FEATURES = Features({"audio": Audio(decode=False), "label": ClassLabel(names=["a", "b", "c"])})


def test_held_out_rows_are_written_as_they_are_read_and_are_the_shuffles_first(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    counts, clip_bytes = {"validation": 400, "test": 400}, 8000
    spec = SimpleNamespace(shuffle_buffer_size=10)
    stream = held_out_stream(1000, clip_bytes)
    _hold_out(held_out_stream(3, 10), {"validation": 1}, spec, 3, FEATURES, "warm-up")  # imports, temporary folder
    tracemalloc.start()
    try:
        _, evaluation, held_keys = _hold_out(stream, counts, spec, 3, FEATURES, "repo (split 'train')")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    held_bytes = sum(counts.values()) * clip_bytes  # 6.4 MB; held in lists and copied, the peak was 28 MB
    assert peak < held_bytes / 2, peak  # 1.1 MB: a writer batch
    first = list(stream.shuffle(seed=3, buffer_size=10).take(800))
    assert held_keys == {row[KEY_COLUMN] for row in first}
    for split, rows_taken in (("validation", first[:400]), ("test", first[400:])):
        assert evaluation[split].column_names == ["audio", "label"] and evaluation[split].features == FEATURES
        assert evaluation[split]["label"] == [row["label"] for row in rows_taken]
        assert [(a["path"], a["bytes"]) for a in evaluation[split]["audio"]] == [
            (row["audio"]["path"], row["audio"]["bytes"]) for row in rows_taken]


def test_held_out_rows_stay_in_memory_where_no_scratch_folder_can_be_made(tmp_path, monkeypatch):
    """A read-only datasets cache (shared, its decoded splits made before) was refused ("set HF_DATASETS_CACHE to a
    folder you can write") once the rows went to a scratch folder there; they are held in memory instead, once, as
    Arrow: the same rows, and the same fingerprint, so the decoded splits are found again."""
    from hfspeech.data import hub_stream
    from hfspeech.errors import OutputWriteError

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    spec = SimpleNamespace(shuffle_buffer_size=10)
    _, on_disk, _ = _hold_out(held_out_stream(50, 100), {"validation": 20}, spec, 3, FEATURES, "repo")

    def read_only(*args, **kwargs):
        raise OutputWriteError(f"{tmp_path / 'cache'}: cannot write (Read-only file system)")

    monkeypatch.setattr(hub_stream, "run_scratch_folder", read_only)
    _, in_memory, _ = _hold_out(held_out_stream(50, 100), {"validation": 20}, spec, 3, FEATURES, "repo")
    assert in_memory["validation"].to_dict() == on_disk["validation"].to_dict()
    assert in_memory["validation"]._fingerprint == on_disk["validation"]._fingerprint


def test_a_full_disk_while_the_held_out_rows_are_written_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    import errno

    from datasets.arrow_writer import ArrowWriter

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))

    def full_disk(self, *args, **kwargs):  # what a real full tmpfs raised (checked by hand); root ignores a chmod
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ArrowWriter, "write", full_disk)
    with pytest.raises(OutputWriteError, match="^" + re.escape(f"{run_scratch_folder()}: cannot write (No "
                                                               "space left on device); the evaluation")):
        _hold_out(held_out_stream(5, 10), {"validation": 2}, SimpleNamespace(shuffle_buffer_size=2), 0, FEATURES,
                  "repo (split 'train')")


def test_a_streamed_datasets_evaluation_splits_are_decoded_once_into_the_datasets_cache(tmp_path, monkeypatch):
    # written to datasets' temporary folder, they would be decoded beside it again on every run
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    repo = parquet_repo(tmp_path / "repo", {"train": rows(4), "test": rows(1, seed=70)})
    first = load(True, dataset_name=str(repo), max_eval_samples=3)
    prepared = sorted(Path(tmp_path / "cache" / "hfspeech-prepared").glob("*.arrow"))
    assert len(prepared) == 2  # validation (held out of train) and the dataset's test split
    again = load(True, dataset_name=str(repo), max_eval_samples=3)
    assert sorted(Path(tmp_path / "cache" / "hfspeech-prepared").glob("*.arrow")) == prepared
    for split in ("validation", "test"):
        assert again.evaluation[split]["path"] == first.evaluation[split]["path"]
        assert {f["filename"] for f in again.evaluation[split].cache_files} <= {str(p) for p in prepared}


RUN_AND_STOP = """
import os, signal, sys
from hfspeech.data.run_scratch import run_scratch_folder
(run_scratch_folder() / "held.arrow").write_bytes(b"rows")
print(run_scratch_folder(), flush=True)
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_run_scratch_folder_goes_at_exit_and_a_killed_runs_with_the_next_run(tmp_path, monkeypatch):
    # in datasets' temporary folder ($TMPDIR), a run killed outright left the evaluation rows for good
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.getcwd()}
    ended = subprocess.run([sys.executable, "-c", RUN_AND_STOP, "ended"], env=env, capture_output=True, text=True)
    assert ended.returncode == 0 and not Path(ended.stdout.strip()).exists()
    killed = subprocess.run([sys.executable, "-c", RUN_AND_STOP, "killed"], env=env, capture_output=True, text=True)
    left = Path(killed.stdout.strip())
    assert killed.returncode == -9 and (left / "held.arrow").exists() and left.name.startswith(f".{RUN_SCRATCH}-")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    live = run_scratch_folder()  # this run's: locked while it lives, so another run's sweep keeps it
    assert not left.exists() and live.is_dir()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [live.name]


def test_pos_weight_from_counts_is_that_of_the_multi_hot_matrix():
    matrix = (np.random.default_rng(0).random((200, 9)) < np.linspace(0, 1, 9)).astype(np.float32)
    matrix[:, 5] = 1  # a class without negatives
    positives = matrix.sum(axis=0).astype(np.int64)
    for max_weight in (3.0, 100.0):
        assert np.array_equal(pos_weight_from_counts(positives, len(matrix), max_weight),
                              pos_weight_from_frequencies(matrix, max_weight))
    assert pos_weight_from_counts(np.array([0, 50, 1]), 50, 10.0).tolist() == [1.0, 1.0, 10.0]
