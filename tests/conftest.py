"""Shared fixtures: small generated audio data sets, a quickly trained model, the real FSDD recordings."""

from __future__ import annotations

import gc
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.synthetic.signals import synth_tone_clip

FSDD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"

# Three classes a tiny model learns in a few epochs: a low tone, a high tone, noise bursts.
TONE_CLASSES = {"low": 300.0, "high": 2500.0, "noise": None}

TINY_CNN = json.dumps({"conv_channels": [4, 8], "n_mels": 16, "apply_spec_augment": False})


def synth_clip(kind: str, rng: np.random.Generator, sampling_rate: int, seconds: float = 0.5) -> np.ndarray:
    return synth_tone_clip(TONE_CLASSES[kind], rng, sampling_rate, seconds, jitter=0.02, noise=0.01)


def write_tone_folder(root: Path, clips_per_class: int = 20, rates=(16000, 8000, 44100), seed: int = 0) -> Path:
    """An audiofolder `root/<label>/*.wav` whose clips cycle through several sampling rates."""
    rng = np.random.default_rng(seed)
    for kind in TONE_CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_class):
            rate = rates[i % len(rates)]
            sf.write(root / kind / f"{kind}_{i:03d}.wav", synth_clip(kind, rng, rate), rate)
    return root


def write_long_tone_clips(root: Path) -> Path:
    """Six 0.6-s clips per tone class at 16 kHz, twice a 0.3-s crop: each epoch crops each one somewhere else
    (the reproducibility tests)."""
    rng = np.random.default_rng(0)
    for name, frequency in TONE_CLASSES.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            sf.write(root / name / f"{i}.wav", synth_tone_clip(frequency, rng, 16000, 0.6, jitter=0.02, noise=0.05),
                     16000)
    return root


def write_csv_manifest(path: Path, rows: list[dict]) -> str:
    """`rows` as a UTF-8 CSV manifest (header from the first row's keys), the path as text."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def run_cli_output(args: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `hfspeech ARGS` run in this process, argparse's SystemExit included."""
    from hfspeech.cli import main

    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def save_random_baseline(folder: Path, family: str, labels, initializer_range: float, **config_values) -> Path:
    """A small random-weight CNN or LSTM (`family`), saved with its feature extractor like a training run."""
    import torch

    from hfspeech.models import BASELINE_MODELS

    torch.manual_seed(0)
    spec = BASELINE_MODELS[family]
    config = spec.config_class(num_labels=len(labels), id2label=dict(enumerate(labels)),
                               label2id={label: i for i, label in enumerate(labels)},
                               initializer_range=initializer_range, **config_values)
    spec.model_class(config).save_pretrained(folder)
    spec.feature_extractor_class().save_pretrained(folder)
    return folder


def pytest_configure(config):
    """The processes tests start run torch (and onnxruntime, through hfspeech) on one thread, unless the developer
    set OMP_NUM_THREADS: CI's two test processes on two cores each started commands that ran two threads, which
    spun against the other process's work (the whole suite: 1460 s at the last fresh-clone CI, 1169 s with it;
    45m40 -> 33m26 CPU). hfspeech reads the variable as the user's choice; the tests of its own thread caps clear it
    (tests/test_cpu_threads38.py, test_threads39.py, test_containers40.py). Set here, before the xdist workers start,
    so they inherit it."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_finish(session):
    """The modules and objects collection made (torch, transformers, datasets...) set aside from the garbage
    collector: every full collection a test makes (Trainer.train's, through accelerate's free_memory) walked them
    all (eight training-heavy files, two workers: 167-169 -> 129-135 s wall, 297-301 -> 232-239 CPU s). Objects the
    tests make stay collectable: test_notebooks40's interrupt lost in a finalizer is still freed by a run's first
    collection."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """torch on one intra-op thread in the test processes (their subprocesses: `pytest_configure`). CI runs two
    test processes on two cores: a second thread in each only spun against the other process's work, for tensors
    this small (a tiny CNN's forward 2 ms on one thread, 20-140 ms on two beside a busy core; six training-heavy
    files 188 -> 101 s wall, 269 -> 180 CPU s). Tests of hfspeech's own thread handling set the count they need
    (tests/test_cpu_threads38.py). Set back at the end."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def model_loads_finished():
    """A test's server that stopped before its model loaded (`TestClient` left early) leaves the loading thread
    running: waited for here (a thread this test started, once), not in the next test, where transformers'
    `from_pretrained` (which swaps `nn.Module.register_parameter` process-wide while it builds a model) made the next
    test's own model on the meta device ("Cannot copy out of meta tensor")."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if thread.name == "hfspeech-load":
            thread.join(timeout=120)


@pytest.fixture(scope="session")
def tone_folder(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def few_tones(tmp_path_factory) -> Path:
    """Six 16-kHz clips, for a run that reads its data before the step a test is about (a launched run stopping on
    one machine): the sixty of `tone_folder`, at three rates, were only more decoding and resampling there."""
    return write_tone_folder(tmp_path_factory.mktemp("few_tones"), clips_per_class=2, rates=(16000,))


@pytest.fixture(scope="session")
def trained_cnn(tone_folder, tmp_path_factory) -> Path:
    """A tiny CNN trained through the recipe on the tone data: the model folder other tests load."""
    from hfspeech.training.run import main

    output_dir = tmp_path_factory.mktemp("trained") / "cnn"
    main([
        "--data_dir", str(tone_folder), "--output_dir", str(output_dir), "--model_type", "cnn",
        "--config_overrides", TINY_CNN, "--num_train_epochs", "6", "--learning_rate", "1e-2",
        "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5", "--seed", "0",
        "--save_total_limit", "1",
    ])
    return output_dir


@pytest.fixture
def fsdd_dir() -> Path:
    if not FSDD_DIR.is_dir():
        pytest.skip(f"real FSDD recordings not found at {FSDD_DIR} (they live in ../shared beside the project)")
    return FSDD_DIR


@pytest.fixture(scope="session")
def whisper_tiny_en() -> Path:
    """The converted real Whisper tiny.en (`hfspeech pretrained whisper-tiny.en`, run by scripts/setup.sh).
    Missing is a failure, not a skip: these tests are the evidence that the pretrained path works."""
    from hfspeech.models.whisper.pretrained import PretrainedError, resolve_pretrained

    try:
        return Path(resolve_pretrained("whisper-tiny.en"))
    except PretrainedError as error:
        pytest.fail(str(error), pytrace=False)
