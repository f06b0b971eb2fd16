"""Loading a model by name or path, given what a careless user gives: a Hub id where the Hub cannot be used, a
folder that is not a model (no config.json, an unknown model_type, a frozen run's head-only checkpoint, a run
stopped before its final save, a truncated pytorch_model.bin), and the staleness check of an export, which
must stay correct without reading a large model's weights on every load.

No test touches the network: the Hub endpoint is pointed at a closed local port, or HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

import pytest
from huggingface_hub import constants

from hfspeech.inference.loading import load_backend, warn_if_outdated
from hfspeech.models import fingerprint
from hfspeech.models import loading as model_loading
from hfspeech.models.loading import NotAModelError, pretrained_errors
from hfspeech.training.arguments import ModelArguments
from hfspeech.training.model_setup import build_model, pretrained_feature_extractor
from tests.conftest import save_random_baseline

LABELS = ["a", "b", "c"]


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """The Hub out of reach (its endpoint a closed local port) and an empty Hugging Face cache."""
    import transformers.utils.hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(tmp_path / "hub"))
    model_loading._hub_reachable.cache_clear()  # the probe's answer is kept for the process
    yield tmp_path / "hub"
    model_loading._hub_reachable.cache_clear()


@pytest.fixture
def cnn(tmp_path):
    return save_random_baseline(tmp_path / "cnn", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)


@pytest.mark.parametrize("name, hint", [
    ("openai/whisper-base", "`hfspeech pretrained whisper-base`, then pass whisper-base"),
    ("openai/whisper-tiny", "`hfspeech pretrained whisper-tiny.en` fetches OpenAI Whisper tiny.en"),
    ("facebook/wav2vec2-base", "hf download facebook/wav2vec2-base --local-dir DIR"),
])
def test_a_hub_id_with_the_hub_out_of_reach_is_one_line_at_once(no_hub, name, hint):
    start = time.perf_counter()
    with pytest.raises(NotAModelError) as error:
        load_backend(name)
    assert time.perf_counter() - start < 5  # not huggingface_hub's retries (5 per file, about 20 s each)
    message = str(error.value)
    assert message.startswith(f"{name}: no such folder") and "http://127.0.0.1:9 cannot be reached" in message
    assert hint in message and "\n" not in message


def test_a_hub_id_under_hf_hub_offline_says_offline_and_how_to_get_it(monkeypatch):
    from transformers import AutoFeatureExtractor

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(NotAModelError, match=r"^whisper-tiny: no such folder, .*\(HF_HUB_OFFLINE is set\); "
                                             r"without the Hub, `hfspeech pretrained whisper-tiny.en`"):
        with pretrained_errors("whisper-tiny"):  # local_files_only: what transformers does under HF_HUB_OFFLINE
            AutoFeatureExtractor.from_pretrained("whisper-tiny", local_files_only=True)


def test_a_hub_id_in_the_cache_loads_without_retries_when_the_hub_is_out_of_reach(no_hub, cnn, caplog):
    snapshot = no_hub / "models--someone--tiny-cnn" / "snapshots" / "0123abc"
    shutil.copytree(cnn, snapshot)
    (no_hub / "models--someone--tiny-cnn" / "refs").mkdir()
    (no_hub / "models--someone--tiny-cnn" / "refs" / "main").write_text("0123abc")
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        model, _ = load_backend("someone/tiny-cnn", backend="pytorch")
    assert time.perf_counter() - start < 10
    assert model.config.id2label == dict(enumerate(LABELS))
    assert "using the copy in the Hugging Face cache" in caplog.text


def frozen_run_checkpoint(root, cnn):
    """A checkpoint of a `--freeze_base_model` run: the head's weights and the Trainer's state, no config.json."""
    checkpoint = root / "probe" / "checkpoint-8"
    checkpoint.mkdir(parents=True)
    shutil.copy(cnn / "model.safetensors", checkpoint)
    shutil.copy(cnn / "preprocessor_config.json", checkpoint)
    (checkpoint / "trainer_state.json").write_text("{}")
    return checkpoint, f"use the run folder {root / 'probe'}"


def stopped_run(root, cnn):
    """A run folder killed before its final save: checkpoints only."""
    run = root / "stopped"
    for step in (2, 10):
        shutil.copytree(cnn, run / f"checkpoint-{step}")
    return run, f"its last checkpoint is {run / 'checkpoint-10'}"


def no_config(root, cnn):
    (cnn / "config.json").unlink()
    return cnn, "not a model folder (no config.json)"


def unknown_model_type(root, cnn):
    config = json.loads((cnn / "config.json").read_text())
    (cnn / "config.json").write_text(json.dumps({**config, "model_type": "foo-net"}))
    return cnn, "unknown model_type 'foo-net'"


def truncated_bin(root, cnn):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(cnn / "model.safetensors"), cnn / "pytorch_model.bin")
    (cnn / "model.safetensors").unlink()
    data = (cnn / "pytorch_model.bin").read_bytes()
    (cnn / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    return cnn, f"{cnn / 'pytorch_model.bin'}: corrupt or truncated weights file"


@pytest.mark.parametrize("make", [frozen_run_checkpoint, stopped_run, no_config, unknown_model_type, truncated_bin])
def test_training_from_a_folder_that_is_not_a_model_is_one_line(make, cnn, tmp_path):
    folder, expected = make(tmp_path, cnn)
    args = ModelArguments(model_name_or_path=str(folder))
    with pytest.raises(NotAModelError) as error:
        build_model(args, LABELS, pretrained_feature_extractor(args))
    assert str(error.value).startswith(str(folder)) and expected in str(error.value), str(error.value)


def test_an_unchanged_export_is_not_hashed_again_and_a_replaced_model_is_still_seen(cnn, monkeypatch, caplog):
    export = cnn / "onnx"
    export.mkdir()
    fingerprint.write_traced_from(cnn, export)
    hashed = []
    real_sha256 = fingerprint.file_sha256
    monkeypatch.setattr(fingerprint, "file_sha256", lambda path: hashed.append(path) or real_sha256(path))
    with caplog.at_level(logging.WARNING):
        warn_if_outdated(str(export))
    assert hashed == [] and "exported from another" not in caplog.text

    # Other weights of the same size, given the old file's mtime (`cp -p`, `rsync -t`): still another model.
    weights = cnn / "model.safetensors"
    old = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    replacement = cnn / "replacement"
    replacement.write_bytes(bytes(data))
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(replacement, weights)
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    with caplog.at_level(logging.WARNING):
        warn_if_outdated(str(export))
    assert "exported from another config or weights" in caplog.text
