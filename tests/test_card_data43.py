"""The staged card's "The clips are synthetic" sentence is said only where it is true of all the run's data (real
`hfspeech train` runs, then `stage`): never of a real manifest beside a generated one, of recordings listed in a
generator's folder, of a demo folder with recordings added, or of a folder regenerated since training. And the
card's description names a local start without nested parentheses; a hand-edited base model name is no crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY_CNN, TONE_CLASSES, save_random_baseline, write_csv_manifest

FSDD = Path("/work/shared/data/fsdd/recordings")
SYNTHETIC = "The clips are synthetic"

needs_data = pytest.mark.skipif(shutil.which("espeak-ng") is None or not FSDD.is_dir(),
                                reason="needs espeak-ng and the FSDD recordings")


def recordings(digit: int, count: int) -> list[Path]:
    return sorted(FSDD.glob(f"{digit}_*.wav"))[:count]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """espeak-ng keywords `zero` and `one`, 4 clips each at 8 kHz, with a manifest of them (`generated.csv`)."""
    from hfspeech.synthetic.spoken import generate_keyword_dataset

    root = generate_keyword_dataset(tmp_path_factory.mktemp("gen") / "data", keywords=["zero", "one"],
                                    clips_per_keyword=4, sampling_rate=8000, progress=False)
    write_csv_manifest(root / "generated.csv", [{"path": p.relative_to(root).as_posix(), "label": p.parent.name}
                                                 for p in sorted(root.glob("*/*.wav"))])
    return root


def train(run: Path, *data_args: str) -> Path:
    from hfspeech.training.run import main

    main([*data_args, "--output_dir", str(run), "--model_type", "cnn", "--config_overrides", TINY_CNN,
          "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--max_length_seconds", "1",
          "--seed", "0", "--save_total_limit", "1"])
    return run


def staged_card(run: Path, repo: Path) -> str:
    from hfspeech.hub import stage_run

    stage_run(run, repo)
    return (repo / "README.md").read_text(encoding="utf-8")


def real_manifest(path: Path) -> Path:
    """FSDD recordings of `zero` and `one`, 4 of each: labels the generated data also has."""
    write_csv_manifest(path, [{"path": str(p), "label": label} for digit, label in ((0, "zero"), (1, "one"))
                              for p in recordings(digit, 4)])
    return path


@needs_data
@pytest.mark.parametrize("real_split", ["--test_file", "--train_file", None])
def test_a_real_manifest_beside_a_generated_one_is_not_carded_synthetic(generated, tmp_path, real_split):
    """A real train manifest with a generated --test_file (and the reverse) was carded "The clips are synthetic"
    as a whole; generated manifests alone still are."""
    real = str(real_manifest(tmp_path / "real.csv"))
    gen = str(generated / "generated.csv")
    args = {"--test_file": ["--train_file", gen, "--test_file", real], "--train_file": ["--train_file", real,
            "--test_file", gen], None: ["--train_file", gen]}[real_split]
    card = staged_card(train(tmp_path / "run", *args), tmp_path / "repo")
    if real_split is None:
        assert f"{SYNTHETIC}: speech synthesised by espeak-ng" in card and "generated at 8000 Hz" in card
    else:
        assert SYNTHETIC not in card


@needs_data
def test_recordings_listed_in_a_generators_folder_are_not_carded_synthetic(generated, tmp_path):
    """A manifest of the user's own FSDD recordings saved inside a demo-data folder was carded synthetic."""
    data = Path(shutil.copytree(generated, tmp_path / "data"))
    mine = real_manifest(data / "mine.csv")
    card = staged_card(train(tmp_path / "run", "--train_file", str(mine)), tmp_path / "repo")
    assert SYNTHETIC not in card


@needs_data
def test_a_demo_folder_with_recordings_added_is_not_carded_synthetic(generated, tmp_path):
    """A demo-data folder with a folder of real recordings (`two/`) added, trained as --data_dir, was carded
    synthetic: the info file still sits at its root."""
    data = Path(shutil.copytree(generated, tmp_path / "data"))
    (data / "two").mkdir()
    for clip in recordings(2, 4):
        shutil.copy(clip, data / "two" / clip.name)
    card = staged_card(train(tmp_path / "run", "--data_dir", str(data)), tmp_path / "repo")
    assert SYNTHETIC not in card


@needs_data
def test_a_folder_regenerated_since_training_is_not_carded_by_its_new_info(generated, tmp_path):
    """Regenerated at 16 kHz after a run on its 8 kHz clips, the folder's info file was read as it is now: "The
    clips are synthetic ... not recordings", their 8 kHz gone from the card. The listing run_inputs.json recorded
    tells the folder changed: nothing is said."""
    from hfspeech.synthetic.spoken import generate_keyword_dataset

    data = Path(shutil.copytree(generated, tmp_path / "data"))
    (data / "generated.csv").unlink()  # the generator writes only its own files into the folder
    run = train(tmp_path / "run", "--data_dir", str(data))
    assert "generated at 8000 Hz and resampled to the model's 16000 Hz" in staged_card(run, tmp_path / "repo")
    generate_keyword_dataset(data, keywords=["zero", "one"], clips_per_keyword=4, sampling_rate=16000,
                             progress=False)
    assert SYNTHETIC not in staged_card(run, tmp_path / "repo")


def test_a_local_start_is_described_without_nested_parentheses(tmp_path):
    """The description read "An audio classifier (hfspeech-cnn, fine-tuned from probe (a local checkpoint))"."""
    run = save_random_baseline(tmp_path / "runD", "cnn", list(TONE_CLASSES), 0.5, n_mels=16, conv_channels=[4, 8])
    (run / "training_hyperparameters.json").write_text(json.dumps({"model_name_or_path": "runs/probe"}))
    (run / "run_inputs.json").write_text(json.dumps({"model_name_or_path": str(tmp_path / "runs" / "probe"),
                                                     "data": {}}))
    card = staged_card(run, tmp_path / "repo")
    assert "(hfspeech-cnn, fine-tuned from local checkpoint `probe`) trained with hfspeech" in card, card[:600]
    assert "checkpoint))" not in card


@pytest.mark.parametrize("name", [5, ["whisper-tiny.en"]])
def test_a_base_model_name_that_is_no_text_is_left_out(tmp_path, name):
    """`model_name_or_path` 5 or a list in training_hyperparameters.json stopped `stage` with a TypeError
    traceback (`described_base` -> `hub_id_of`): the description names no base."""
    run = save_random_baseline(tmp_path / "run", "cnn", list(TONE_CLASSES), 0.5, n_mels=16, conv_channels=[4, 8])
    (run / "training_hyperparameters.json").write_text(json.dumps({"model_name_or_path": name}))
    assert "An audio classifier (hfspeech-cnn) trained with hfspeech" in staged_card(run, tmp_path / "repo")
