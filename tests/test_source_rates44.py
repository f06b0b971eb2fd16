"""The rates the training files were recorded at are counted as they are decoded (data_report.json `source_rates`,
kept through the decoded cache), and the staged card says so where they are not the model's: a model trained at
16 kHz on 8 kHz recordings has never heard content above 4 kHz. Real `hfspeech train` runs on generated tone clips
written at 8 or 16 kHz, then `stage`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY_CNN, write_tone_folder

LINE_8K = ("The training clips were recorded at 8 kHz and resampled to 16 kHz: the model has not heard content "
           "above 4 kHz.")
RECORDED = "The training clips were recorded at"


def train(run: Path, data: Path) -> Path:
    from hfspeech.training.run import main

    main(["--data_dir", str(data), "--output_dir", str(run), "--model_type", "cnn", "--config_overrides", TINY_CNN,
          "--max_steps", "1", "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5", "--seed", "0",
          "--save_total_limit", "1"])
    return run


def staged_card(run: Path, repo: Path) -> str:
    from hfspeech.hub import stage_run

    stage_run(run, repo)
    return (repo / "README.md").read_text(encoding="utf-8")


def data_report(run: Path) -> dict:
    return json.loads((run / "data_report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run_8k(tmp_path_factory) -> Path:
    """A 16 kHz tiny CNN trained one step on tone clips written at 8 kHz (12 per class)."""
    root = tmp_path_factory.mktemp("rates8k")
    return train(root / "run", write_tone_folder(root / "data", clips_per_class=12, rates=(8000,)))


def test_a_run_on_8khz_clips_counts_their_rate_and_cards_it(run_8k, tmp_path):
    """Nothing recorded the files' own rate: the report had no `source_rates`, the card no word of 8 kHz."""
    report = data_report(run_8k)
    assert report["sampling_rate"] == 16000
    assert report["source_rates"] == {split: {"8000": n} for split, n in report["kept"].items()}
    card = staged_card(run_8k, tmp_path / "repo")
    assert LINE_8K in card
    section = card.split("## Training data")[1].split("\n## ")[0]
    assert LINE_8K in section


def test_mixed_rates_are_listed_briefly(run_8k, tmp_path):
    """A training split of several rates lists each with its clips, and says which hold nothing above 4 kHz."""
    run = Path(shutil.copytree(run_8k, tmp_path / "run"))
    report = data_report(run)
    report["source_rates"] = {"train": {"8000": 20, "16000": 5, "44100": 3}, "test": {"8000": 4}}
    (run / "data_report.json").write_text(json.dumps(report), encoding="utf-8")
    card = staged_card(run, tmp_path / "repo")
    assert ("The training clips were recorded at several rates (clips per rate: 8 kHz (20), 16 kHz (5), 44.1 kHz (3)) "
            "and resampled to 16 kHz: the 20 at 8 kHz hold no content above 4 kHz.") in card


@pytest.mark.parametrize("old_report", [{}, {"source_rates": "8000"}, {"source_rates": {"train": {"x": "y"}}}])
def test_a_report_without_rate_counts_cards_no_rate(run_8k, tmp_path, old_report):
    """A run from before the rates were counted (no `source_rates`), or a report edited by hand: no line, no error."""
    run = Path(shutil.copytree(run_8k, tmp_path / "run"))
    report = {key: value for key, value in data_report(run).items() if key != "source_rates"}
    (run / "data_report.json").write_text(json.dumps({**report, **old_report}), encoding="utf-8")
    card = staged_card(run, tmp_path / "repo")
    assert RECORDED not in card and "several rates" not in card


def test_a_run_at_the_models_own_rate_gets_no_line(tmp_path):
    """16 kHz files for a 16 kHz model: counted, and nothing to say on the card."""
    run = train(tmp_path / "run", write_tone_folder(tmp_path / "data", clips_per_class=12, rates=(16000,)))
    assert data_report(run)["source_rates"]["train"] == {"16000": data_report(run)["kept"]["train"]}
    card = staged_card(run, tmp_path / "repo")
    assert RECORDED not in card and "several rates" not in card


def test_the_rates_come_back_from_the_decoded_cache_without_decoding(tmp_path, monkeypatch):
    """A second preparation reads the decoded cache: no clip is decoded again, and the rates are still counted."""
    from datasets import Audio, Dataset, DatasetDict

    from hfspeech.data import prepare

    root = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000, 44100))
    paths = sorted(str(path) for path in root.glob("*/*.wav"))
    labels = [Path(path).parent.name for path in paths]
    split = Dataset.from_dict({"audio": paths, "label": labels}).cast_column("audio", Audio(decode=False))
    cold = prepare.prepare_dataset(DatasetDict(train=split), 16000)[1]
    assert cold.to_dict()["source_rates"] == {"train": {"8000": 3, "44100": 3}}

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again: the cache was not read")

    monkeypatch.setattr(prepare, "decode_audio", no_decoding)
    warm = prepare.prepare_dataset(DatasetDict(train=split), 16000)[1]
    assert warm.to_dict()["source_rates"] == {"train": {"8000": 3, "44100": 3}}


def test_a_decoding_made_before_the_rates_were_kept_stays_in_its_family(tmp_path, monkeypatch):
    """The decoded features gained `source_rate`; had the family's name taken it in, a decoding an older hfspeech
    made (without the column) would be in a family no newer run records, and never removed (1.2 GB for 20,000
    one-second clips). The family is still the one the older layout names."""
    import datasets
    from datasets import Audio, Dataset, DatasetDict, Features, List, Value

    from hfspeech.data.decoded_caches import FAMILIES_FOLDER, decoded_family
    from hfspeech.data.prepare import prepare_dataset

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    root = write_tone_folder(tmp_path / "data", clips_per_class=1, rates=(8000,))
    paths = sorted(str(path) for path in root.glob("*/*.wav"))
    labels = [Path(path).parent.name for path in paths]
    split = Dataset.from_dict({"audio": paths, "label": labels}).cast_column("audio", Audio(decode=False))
    prepare_dataset(DatasetDict(train=split), 16000)
    older_layout = Features({"input_values": List(Value("float32")), "length": Value("int64"),
                             "path": Value("string"), "error": Value("string"), "label": split.features["label"]})
    family = decoded_family(split, [16000, False, 40.0, True], older_layout)
    assert [record.stem for record in (tmp_path / "hf" / FAMILIES_FOLDER).glob("*.json")] == [family]


@pytest.mark.parametrize("suffix", [".wav", ".m4a"])
def test_each_decoder_gives_the_files_own_rate(tmp_path, suffix):
    """libsndfile (WAV) and ffmpeg (M4A, which libsndfile cannot read) both say the rate they decoded the file at."""
    import subprocess

    import numpy as np
    import soundfile as sf

    from hfspeech.data.audio import decode_audio

    wav = tmp_path / "clip.wav"
    sf.write(wav, np.random.default_rng(0).uniform(-0.3, 0.3, 11025).astype(np.float32), 11025)
    clip = wav if suffix == ".wav" else tmp_path / f"clip{suffix}"
    if clip != wav:
        if shutil.which("ffmpeg") is None:
            pytest.skip("needs the ffmpeg command to write an M4A")
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), str(clip)], check=True)
    rates: list = []
    assert decode_audio(str(clip), 16000, rates).size > 15000 and rates == [11025]
