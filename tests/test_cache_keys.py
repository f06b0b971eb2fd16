"""Caches must not serve results for inputs that changed: audio overwritten under the same name (even with
the old mtime put back, as `touch -r` or `cp -p` do) changes the prepared data's fingerprint, and so every
cache keyed by it downstream (decoded audio, frozen features, teacher logits)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_tone_folder
from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.prepare import prepare_dataset
from hfspeech.training import teacher_cache

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _overwrite_keeping_size_and_mtime(path: Path) -> None:
    """New audio under the same name and size, with the old mtime put back (`touch -r`)."""
    before = os.stat(path)
    audio, rate = sf.read(path, dtype="float32")
    sf.write(path, -0.5 * audio, rate, subtype="PCM_16")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns


def _prepared(source: dict, cache: Path):
    train = prepare_dataset(load_audio_dataset(cache_dir=str(cache), **source), 16000)[0]["train"]
    return train, {path: np.asarray(clip) for path, clip in zip(train["path"], train["input_values"])}


@pytest.mark.parametrize("layout", ["folder", "manifest"])
def test_audio_overwritten_in_place_changes_the_fingerprint_and_the_decoded_clips(tmp_path, layout):
    root = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(16000,))
    clips = sorted(root.rglob("*.wav"))
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,label\n" + "".join(f"{c},{c.parent.name}\n" for c in clips))
    source = {"data_dir": str(root)} if layout == "folder" else {"train_file": str(manifest)}
    first, decoded = _prepared(source, tmp_path / "cache")
    again, _ = _prepared(source, tmp_path / "cache")
    assert again._fingerprint == first._fingerprint  # nothing changed: the caches are reused
    _overwrite_keeping_size_and_mtime(clips[0])
    changed, now = _prepared(source, tmp_path / "cache")
    assert changed._fingerprint != first._fingerprint
    np.testing.assert_allclose(now[str(clips[0])], -0.5 * decoded[str(clips[0])], atol=1e-3)
    labels = ["high", "low", "noise"]
    (tmp_path / "teacher").mkdir()
    assert (teacher_cache.cache_key(str(tmp_path / "teacher"), changed, labels)
            != teacher_cache.cache_key(str(tmp_path / "teacher"), first, labels))


def test_teacher_weights_copied_in_with_their_old_mtime_change_the_teacher_key(tmp_path, tone_folder):
    split = prepare_dataset(load_audio_dataset(data_dir=str(tone_folder), cache_dir=str(tmp_path)), 16000)[0]["train"]
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    weights = teacher / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    key = teacher_cache.cache_key(str(teacher), split, ["a"])
    before = os.stat(weights)
    weights.write_bytes(b"b" * 64)  # a retrained teacher copied in with `cp -p`: same size, old mtime
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert teacher_cache.cache_key(str(teacher), split, ["a"]) != key
