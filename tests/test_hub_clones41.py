"""A local clone of a Hub dataset (Parquet shards and a README whose YAML has `configs:`) that changes between
runs is read afresh, decoded audio included; a streamed clone counts its rows exactly, so a resumed run trains
as the run it continues did.

No test touches the network: the datasets are Parquet folders written here, and the Hub is offline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from safetensors.torch import load_file

from hfspeech.data.audio import decode_audio
from hfspeech.data.hub_stream import open_datasets_dataset
from hfspeech.data.prepare import prepare_dataset
from hfspeech.errors import DataError
from hfspeech.training.run import main
from tests.conftest import TINY_CNN
from tests.test_hub_dataset_inputs import CLASSES, load, offline, parquet_repo, rows  # noqa: F401 (a fixture)

README = """---
configs:
- config_name: tones
  data_files:
  - split: train
    path: data/train-*
  - split: validation
    path: data/validation-*
  - split: test
    path: data/test-*
  default: true
---
"""


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A datasets cache of this test's own: a build left by another test cannot stand in for this one's."""
    import datasets

    cache = tmp_path / "datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    return cache


def cloned_repo(root: Path, readme: str = README) -> Path:
    repo = parquet_repo(root, {"train": rows(2), "validation": rows(1, seed=50), "test": rows(1, seed=60)})
    (repo / "README.md").write_text(readme)
    return repo


def decoded_train(repo: Path) -> list[tuple]:
    """The decoded training clips of a map-style run (`data.prepare`, cached by the split's fingerprint)."""
    train = load(False, dataset_name=str(repo))["train"]
    decoded = prepare_dataset(DatasetDict({"train": train}), 16000)[0]["train"]
    return heads(decoded["input_values"])


def expected(split_rows: list[dict]) -> list[tuple]:
    return heads(decode_audio(r["audio"], 16000) for r in split_rows)


def heads(waves) -> list[tuple]:
    """Each clip's first samples, rounded, in a set order: which clips a split holds, whatever its row order."""
    return sorted(tuple(np.round(np.asarray(wave[:64], dtype=np.float32), 3).tolist()) for wave in waves)


def test_a_clone_whose_shards_changed_is_read_and_decoded_afresh(offline, own_cache, tmp_path):
    # datasets named the build after the README's patterns, not the files: a rewritten or added shard was
    # never read, and training ran on the old rows (and the old decoded audio) without a word.
    repo = cloned_repo(tmp_path / "repo")
    assert decoded_train(repo) == expected(rows(2))
    rewritten = rows(2, seed=7)  # the same row count and file names, other bytes
    Dataset.from_list(rewritten, features=CLASSES).to_parquet(repo / "data" / "train-00000-of-00001.parquet")
    assert decoded_train(repo) == expected(rewritten)
    added = rows(1, seed=9)
    Dataset.from_list(added, features=CLASSES).to_parquet(repo / "data" / "train-00001-of-00002.parquet")
    assert len(open_datasets_dataset(str(repo), None)["train"]) == 9
    assert decoded_train(repo) == expected(rewritten + added)


def test_an_unchanged_clone_reuses_its_build(offline, own_cache, tmp_path):
    repo = cloned_repo(tmp_path / "repo")
    first = open_datasets_dataset(str(repo), None)["train"]
    again = open_datasets_dataset(str(repo), None)["train"]
    assert again.cache_files == first.cache_files and again._fingerprint == first._fingerprint
    assert len([build for build in own_cache.glob("repo/*/0.0.0/*") if build.is_dir()]) == 1


def test_a_card_whose_split_sizes_are_out_of_date_is_one_line_saying_so(offline, own_cache, tmp_path):
    sizes = "".join(f"  - name: {split}\n    num_examples: {n}\n" for split, n in (("train", 6), ("validation", 3),
                                                                                     ("test", 3)))
    card = README.replace("---\nconfigs:", f"---\ndataset_info:\n- config_name: tones\n  splits:\n{sizes}configs:")
    repo = cloned_repo(tmp_path / "repo", card)
    assert len(open_datasets_dataset(str(repo), None)["train"]) == 6
    Dataset.from_list(rows(3), features=CLASSES).to_parquet(repo / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"^--dataset_name .*repo: the dataset_info of its README.md no longer "
                                        r"matches the data files \(split 'train': 6 rows in the card, 9 in the "
                                        r"files\).*split sizes under dataset_info in .*README.md$"):
        open_datasets_dataset(str(repo), None)


def test_a_streamed_clone_counts_its_training_rows_exactly(offline, own_cache, tmp_path):
    repo = cloned_repo(tmp_path / "repo")
    assert load(True, dataset_name=str(repo)).exact_train_rows == 6
    # clips held out of train are filtered out by their bytes' hash, duplicates too: the count is not exact
    only_train = parquet_repo(tmp_path / "only_train", {"train": rows(4)})
    held_out = load(True, dataset_name=str(only_train), max_eval_samples=1)
    assert (held_out.num_train_rows, held_out.exact_train_rows) == (10, None)


def streamed_run(repo: Path, out: Path) -> Path:
    main(["--dataset_name", str(repo), "--streaming", "--shuffle_buffer_size", "4", "--output_dir", str(out),
          "--config_overrides", TINY_CNN, "--num_train_epochs", "2", "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "2", "--max_length_seconds", "0.2", "--seed", "0",
          "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "5", "--report_to", "none",
          "--load_best_model_at_end", "False"])
    return out


def test_a_streamed_clone_resumed_mid_pass_trains_as_the_run_it_continues(offline, own_cache, tmp_path):
    # The count was read from the card (or the footers) but never trusted: the stream had no length, the
    # Trainer saw one endless epoch, and the resumed run skipped and reshuffled other clips than the whole run.
    repo = cloned_repo(tmp_path / "repo")
    whole = streamed_run(repo, tmp_path / "whole")
    assert json.loads((whole / "trainer_state.json").read_text())["global_step"] == 6  # 2 passes of 3 batches
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-4", resumed / "checkpoint-4")  # one batch into the second pass
    streamed_run(repo, resumed)
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0
