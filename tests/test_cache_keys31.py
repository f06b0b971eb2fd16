"""One decoded cache per audio folder however `--data_dir` spells it: relative, absolute, or relative from another
working directory. The cache key is made of the listed paths; typed as given, each spelling decoded and stored every
clip again (+58 MB per spelling for 2000 clips) and a frozen Whisper probe re-encoded them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import write_tone_folder
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.prepare import prepare_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _listing_keys(cache: Path) -> list[str]:
    return sorted(os.listdir(cache / "hfspeech-audiofolder"))


def test_every_spelling_of_a_folder_shares_one_listing_and_one_decoded_cache(tmp_path, monkeypatch):
    root = write_tone_folder(tmp_path / "work" / "data", clips_per_class=2, rates=(16000,))
    cache = tmp_path / "cache"
    other = tmp_path / "elsewhere"
    other.mkdir()
    fingerprints = []
    for cwd, spelling in ((root.parent, "data"), (root.parent, str(root)), (other, "../work/data")):
        monkeypatch.chdir(cwd)
        loaded = load_audio_dataset(data_dir=spelling, cache_dir=str(cache))
        fingerprints.append(prepare_dataset(loaded, 16000)[0]["train"]._fingerprint)
    assert len(_listing_keys(cache)) == 1
    assert len(set(fingerprints)) == 1  # the decoded clips' cache key: decoded once, not once per spelling


def test_paths_of_a_relative_spelling_are_found_from_any_working_directory(tmp_path, monkeypatch):
    """The cached listing is read again from elsewhere: its paths must not be relative to the first run's cwd."""
    root = write_tone_folder(tmp_path / "data", clips_per_class=1, rates=(16000,))
    monkeypatch.chdir(tmp_path)
    load_audio_dataset(data_dir="data", cache_dir=str(tmp_path / "cache"))
    monkeypatch.chdir(next(p for p in root.iterdir() if p.is_dir()))
    loaded = load_audio_dataset(data_dir="..", cache_dir=str(tmp_path / "cache"))
    assert all(os.path.isfile(clip["path"]) for clip in loaded["train"]["audio"])


def test_a_linked_folder_keeps_its_name_and_dot_dot_after_a_link_is_not_folded(tmp_path, monkeypatch):
    """Not `realpath`: a link keeps the name the user gave it (manifests follow the same rule); and `link/..` is
    the parent of the link's target, which lexical folding (`os.path.abspath` alone) would get wrong."""
    target = write_tone_folder(tmp_path / "store" / "data", clips_per_class=1, rates=(16000,))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "link").symlink_to(target, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "work")
    paths = load_audio_dataset(data_dir="link", cache_dir=str(tmp_path / "cache"))["train"]["audio"]
    assert all(clip["path"].startswith(str(tmp_path / "work" / "link") + os.sep) for clip in paths)
    up = load_audio_dataset(data_dir="link/../data", cache_dir=str(tmp_path / "cache"))["train"]["audio"]
    assert all(os.path.isfile(clip["path"]) for clip in up)


def test_carved_splits_are_the_same_for_every_spelling(tmp_path, monkeypatch):
    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    monkeypatch.chdir(tmp_path)
    splits = []
    for spelling in ("data", str(root)):
        spec = DataSpec(source=dict(data_dir=spelling, cache_dir=str(tmp_path / "cache")))
        raw = load_labelled_splits(spec, seed=3)
        splits.append({name: [Path(clip["path"]).name for clip in split["audio"]] for name, split in raw.items()})
    assert splits[0] == splits[1]
