"""The FSDD leave-one-speaker-out manifests (`recipes/fsdd/prepare_fsdd.py`): the test speaker never reaches
training or validation, and generated espeak-ng digits join the training split only."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hfspeech.synthetic.digits import DIGIT_WORDS  # noqa: E402
from recipes.fsdd.prepare_fsdd import SYNTHETIC_SPEAKER, prepare_fsdd  # noqa: E402

SPEAKERS = ("ann", "bob", "cid")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Three speakers x 10 digits x 2 takes of short noise, named as FSDD names its files."""
    folder = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(0)
    for speaker in SPEAKERS:
        for digit in range(10):
            for take in range(2):
                sf.write(folder / f"{digit}_{speaker}_{take}.wav", 0.1 * rng.standard_normal(800), 8000)
    return folder


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_test_speaker_is_only_in_the_test_split(recordings, tmp_path):
    paths = prepare_fsdd(recordings, tmp_path, test_speaker="cid", validation_fraction=0.5)
    assert {r["speaker"] for r in rows(paths["test"])} == {"cid"} and len(rows(paths["test"])) == 20
    for split in ("train", "validation"):
        assert {r["speaker"] for r in rows(paths[split])} == {"ann", "bob"}
    assert len(rows(paths["train"])) == len(rows(paths["validation"])) == 20


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_synthetic_digits_join_the_training_split_only(recordings, tmp_path):
    paths = prepare_fsdd(recordings, tmp_path / "fold", test_speaker="cid", validation_fraction=0.5,
                         synthetic_per_digit=1, synthetic_dir=tmp_path / "espeak")
    train = rows(paths["train"])
    synthetic = [r for r in train if r["speaker"] == SYNTHETIC_SPEAKER]
    assert sorted(int(r["label"]) for r in synthetic) == list(range(10))
    for row in synthetic:  # the digit's own word, at FSDD's sampling rate
        assert Path(row["path"]).parent.name == DIGIT_WORDS[int(row["label"])]
        assert sf.info(row["path"]).samplerate == 8000
    assert len(train) == 20 + 10
    for split in ("validation", "test"):
        assert SYNTHETIC_SPEAKER not in {r["speaker"] for r in rows(paths[split])}


def test_benchmark_runs_are_seed_0_unless_their_flags_name_a_seed(tmp_path):
    from benchmarks import pretrained
    from hfspeech.training.run import parse_args

    data = ["--data_dir", str(tmp_path)]
    for extra, seed in (([], 0), (["--seed", "3"], 3)):
        argv = pretrained.with_run_defaults(["--model_type", "cnn", *data, *extra], tmp_path / "out")
        training_args = parse_args(argv)[-1]
        assert training_args.seed == seed and training_args.output_dir == str(tmp_path / "out")
