"""espeak-ng digits as extra training voices: labelled by their word, the same bytes from the same seed, and a
manifest that merges with a recorded training split."""

import csv
import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf

from hfspeech.errors import DataError
from hfspeech.synthetic.digits import DIGIT_WORDS, generate_spoken_digits, merge_manifests

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def rows(manifest):
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return generate_spoken_digits(tmp_path_factory.mktemp("digits"), clips_per_digit=2, sampling_rate=8000)


def test_every_clip_is_labelled_with_its_digit_and_is_speech_at_the_rate(digits):
    listed = rows(digits)
    assert sorted(row["label"] for row in listed) == sorted([str(d) for d in range(10)] * 2)
    for row in listed:
        word = DIGIT_WORDS[int(row["label"])]
        assert f"/{word}/{word}_" in row["path"] and row["speaker"] == "espeak-ng"
        audio, rate = sf.read(row["path"])
        assert rate == 8000 and len(audio) == 8000 and np.abs(audio).max() > 0.01


def test_the_same_seed_gives_the_same_clips_and_another_seed_other_ones(digits, tmp_path):
    again = generate_spoken_digits(tmp_path / "again", clips_per_digit=2, sampling_rate=8000)
    other = generate_spoken_digits(tmp_path / "other", clips_per_digit=2, sampling_rate=8000, seed=1)
    first = [digest(row["path"]) for row in rows(digits)]
    assert [digest(row["path"]) for row in rows(again)] == first
    assert len(set(first) & {digest(row["path"]) for row in rows(other)}) == 0


def test_merged_manifest_keeps_both_sets_of_rows_and_refuses_other_columns(digits, tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("path,label,speaker\n/data/0_george_0.wav,0,george\n")
    merged = rows(merge_manifests(train, digits, tmp_path / "merged.csv"))
    assert merged[0]["speaker"] == "george" and len(merged) == 1 + len(rows(digits))
    other = tmp_path / "other.csv"
    other.write_text("path,label\n/data/x.wav,1\n")
    with pytest.raises(DataError, match="other.csv: columns"):
        merge_manifests(train, other, tmp_path / "bad.csv")
