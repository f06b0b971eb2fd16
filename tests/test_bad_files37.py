"""A manifest given as is (no split carved from it): its bad files counted and named in one error, as a carved split's
are, and the decoded failures not read back from the cache by the next run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import write_csv_manifest
from hfspeech.data.audio import AudioFileError
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.prepare import SKIP_HINT, DataReport, prepare_dataset

RATE = 8000


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return tmp_path / "hf-datasets-cache"


def manifest_with_bad_files(folder, good: int = 4, bad: int = 5) -> tuple[str, list[str]]:
    """A CSV of `good` tones and `bad` files that are not audio (text), two labels; the bad files' paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, broken = [], []
    for i in range(good):
        path = folder / f"good{i}.wav"
        sf.write(path, np.full(RATE // 4, 0.1 * (i + 1), np.float32), RATE)
        rows.append({"path": str(path), "label": "ab"[i % 2]})
    for i in range(bad):
        path = folder / f"bad{i}.wav"
        path.write_text("not audio at all, only text " * 20)
        rows.append({"path": str(path), "label": "ab"[i % 2]})
        broken.append(str(path))
    return write_csv_manifest(folder / "m.csv", rows), broken


def given_as_is(manifest: str):
    """The manifest as train, nothing carved: each split decoded by itself, not as rows of a whole table."""
    return load_labelled_splits(DataSpec(source={"train_file": manifest}, validation_percentage=0,
                                         test_percentage=0), seed=0)


def test_a_given_manifests_bad_files_are_counted_and_named(tmp_path, datasets_cache):
    manifest, broken = manifest_with_bad_files(tmp_path / "data")
    with pytest.raises(AudioFileError) as error:
        prepare_dataset(given_as_is(manifest), RATE)
    message = str(error.value)
    named = [path for path in broken if path in message]
    assert "; and 4 more bad file(s) in this data: " in message, message
    assert len(named) == 4 and " and 1 more" in message, message  # the first, three others, and a count
    assert SKIP_HINT in message


def test_skipping_them_is_unchanged(tmp_path, datasets_cache):
    manifest, broken = manifest_with_bad_files(tmp_path / "data")
    report = DataReport()
    prepared, report = prepare_dataset(given_as_is(manifest), RATE, skip_bad_files=True, report=report)
    assert len(prepared["train"]) == 4 and report.kept == {"train": 4}
    assert sorted(entry["path"] for entry in report.skipped["train"]) == sorted(broken)
    assert report.skipped_rows == {"train": [4, 5, 6, 7, 8]}
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["num_skipped"] == 5 and "skipped_rows" not in saved


def test_a_broken_decoder_once_mended_decodes_again(tmp_path, datasets_cache, monkeypatch):
    """Every clip fails while the decoder is broken (torchcodec missing); the next run, mended, must not read those
    failures back from the cache it decoded them into (a skipping run would then drop every clip)."""
    import hfspeech.data.prepare as prepare

    manifest, _ = manifest_with_bad_files(tmp_path / "data", bad=0)

    def broken(audio, rate, *source_rates):
        raise AudioFileError(audio["path"], "no decoder (torchcodec is not installed)")

    with monkeypatch.context() as patched:
        patched.setattr(prepare, "decode_audio", broken)
        with pytest.raises(AudioFileError, match="; and 3 more bad file"):
            prepare_dataset(given_as_is(manifest), RATE)
    prepared, report = prepare_dataset(given_as_is(manifest), RATE, skip_bad_files=True)
    assert len(prepared["train"]) == 4 and report.num_skipped == 0
