"""A local clone's builds in the datasets cache (review R1 of session 41): a `chmod`, or a `touch` that keeps the
times, built the whole clone again (its key held each file's ctime); the build an edit superseded stayed for good
(a full copy of the clone per edit); a README `filters:` made a streamed clone's footer count exact though the
stream reads fewer rows; and frozen features cached under their old name were encoded again, the old file left.

No test touches the network: the datasets are Parquet folders written here, and the Hub is offline.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import pytest
from datasets import Dataset

from hfspeech.data import cache_users, hub_stream
from hfspeech.data.dataset_opening import open_datasets_dataset
from hfspeech.training.feature_cache import cached_feature_views
from tests.test_decoded_caches40 import data, held_by_another_run, prepared  # noqa: F401 (a fixture)
from tests.test_derived_caches41 import encoder, features_files
from tests.test_hub_clones41 import README, cloned_repo, own_cache  # noqa: F401 (a fixture)
from tests.test_hub_dataset_inputs import CLASSES, offline, rows  # noqa: F401 (a fixture)


@pytest.fixture
def own_locks(monkeypatch):
    """This test's own cache-folder locks, let go at its end."""
    held = OrderedDict()
    monkeypatch.setattr(cache_users, "_held", held)
    yield
    for handle in held.values():
        if handle is not None:
            os.close(handle)


def build_folder(loaded) -> Path:
    return Path(loaded["train"].cache_files[0]["filename"]).parent


def edited(repo: Path) -> None:
    """The training shard rewritten with other clips, its mtime a second later (an edit whatever the clock)."""
    shard = repo / "data" / "train-00000-of-00001.parquet"
    mtime = shard.stat().st_mtime_ns
    Dataset.from_list(rows(2, seed=7), features=CLASSES).to_parquet(shard)
    os.utime(shard, ns=(mtime + 10**9, mtime + 10**9))


def test_a_chmod_or_a_touch_that_keeps_the_times_reuses_the_build(offline, own_cache, own_locks, tmp_path):
    repo = cloned_repo(tmp_path / "repo")
    first = open_datasets_dataset(str(repo), None)["train"]
    for shard in (repo / "data").iterdir():  # each changes the file's ctime, not its bytes, size or mtime
        stat = shard.stat()
        os.chmod(shard, 0o600)
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = open_datasets_dataset(str(repo), None)["train"]
    assert again.cache_files == first.cache_files and again._fingerprint == first._fingerprint
    assert len([build for build in own_cache.glob("repo/*/0.0.0/*") if build.is_dir()]) == 1


def test_the_build_an_edit_superseded_is_removed(offline, own_cache, own_locks, tmp_path, caplog):
    repo = cloned_repo(tmp_path / "repo")
    earlier = build_folder(open_datasets_dataset(str(repo), None))
    edited(repo)
    with caplog.at_level("WARNING", logger="hfspeech.data"):
        now = open_datasets_dataset(str(repo), None)
    assert build_folder(now) != earlier and len(now["train"]) == 6
    assert not [path for path in earlier.rglob("*") if path.is_file() and path.name != cache_users.LOCK_NAME]
    assert "of an earlier build of" in caplog.text and "removed" in caplog.text
    assert len(open_datasets_dataset(str(repo), None)["train"]) == 6  # the new build read back


def test_copies_at_one_path_on_two_machines_sharing_a_cache_keep_their_builds(offline, own_cache, own_locks,
                                                                              tmp_path, monkeypatch):
    """Node-local copies of a clone at one path (their files' own times) on machines sharing one datasets cache
    removed each other's build, and its decodings, on every run (reviewer R4): the family is each machine's."""
    import socket

    repo = cloned_repo(tmp_path / "repo")
    monkeypatch.setattr(socket, "gethostname", lambda: "node-a")
    first = build_folder(open_datasets_dataset(str(repo), None))
    edited(repo)  # the other machine's copy: other times
    monkeypatch.setattr(socket, "gethostname", lambda: "node-b")
    second = build_folder(open_datasets_dataset(str(repo), None))
    assert first != second and [path for path in first.rglob("*.arrow")]


def test_a_build_a_live_run_holds_is_kept_and_removed_by_the_next_run(offline, own_cache, own_locks, tmp_path):
    repo = cloned_repo(tmp_path / "repo")
    earlier = build_folder(open_datasets_dataset(str(repo), None))
    files = sorted(earlier.rglob("*.arrow"))
    edited(repo)
    with held_by_another_run(earlier):  # a run still training on the earlier rows
        open_datasets_dataset(str(repo), None)
    assert files and all(path.is_file() for path in files)
    open_datasets_dataset(str(repo), None)
    assert not any(path.exists() for path in files)


def test_a_build_in_another_cache_is_left_to_that_cache(offline, own_cache, own_locks, tmp_path):
    """`--cache_dir` and the datasets cache build the same folder each their own way: neither removes the other's."""
    repo = cloned_repo(tmp_path / "repo")
    elsewhere = build_folder(open_datasets_dataset(str(repo), None, cache_dir=str(tmp_path / "other_cache")))
    open_datasets_dataset(str(repo), None)
    edited(repo)
    open_datasets_dataset(str(repo), None)
    assert list(elsewhere.glob("*.arrow"))


def test_a_readme_filter_makes_the_footer_count_not_exact(offline, own_cache, tmp_path):
    # the footers count every row of the files; the stream yields only those the filter keeps (20 of 40)
    filtered = README.replace("  default: true\n", "  default: true\n  filters:\n  - [label, '==', 0]\n")
    repo = cloned_repo(tmp_path / "repo", filtered)
    stream = open_datasets_dataset(str(repo), None, streaming=True)["train"]
    assert sum(1 for _ in stream) == 2 and hub_stream._split_size(stream, "train") == (6, False)
    plain = open_datasets_dataset(str(cloned_repo(tmp_path / "plain")), None, streaming=True)["train"]
    assert hub_stream._split_size(plain, "train") == (6, True)


def old_name(features: Path) -> Path:
    """The name an earlier hfspeech gave these features (datasets' own: `cache-<split fp>-frozen-<encoder>.arrow`)
    from the new one (`<decoded table>-frozen-<split fp>-<encoder>.arrow`)."""
    key = features.stem.split("-frozen-", 1)[1]
    split_fingerprint, encoder_fingerprint = key.rsplit("-", 1)
    return features.with_name(f"cache-{split_fingerprint}-frozen-{encoder_fingerprint}.arrow")


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_features_cached_under_the_old_name_are_renamed_not_encoded_again(data, tmp_path):
    model, extractor = encoder(tmp_path, [4, 8])
    dataset = prepared(data)
    cached_feature_views(model, extractor, dataset, 16000, 0.5)
    new = sorted((tmp_path / "cache").rglob("*-frozen-*.arrow"))
    assert len(new) == 3  # train, validation, test
    inodes = {}
    for path in new:  # as an earlier hfspeech left them
        os.replace(path, old_name(path))
        inodes[path.name] = old_name(path).stat().st_ino
    cached_feature_views(model, extractor, dataset, 16000, 0.5)
    assert {path.name for path in new} == features_files(tmp_path)  # the old names gone
    assert {path.name: path.stat().st_ino for path in new} == inodes  # the same files: none encoded again
