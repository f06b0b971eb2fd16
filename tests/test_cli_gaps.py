"""Gaps an earlier CLI audit left: `--device` on the inference commands (a device not here is one line), a
model whose classification head was never trained (refused by the commands, warned of in Python), the
user's TRANSFORMERS_VERBOSITY kept by training, and two unactionable warnings hidden by the library itself
(not by a process-wide filter the CLI installed)."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from conftest import run_cli_output, save_random_baseline

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
CNN = dict(conv_channels=[4, 8], n_mels=16)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    return run_cli_output(args, capsys)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A saved CNN (every weight in its checkpoint), the same without its head's weights, an ONNX export, a clip."""
    root = tmp_path_factory.mktemp("gaps")
    trained = save_random_baseline(root / "cnn", "cnn", ["yes", "no"], 0.02, **CNN)
    headless = save_random_baseline(root / "headless", "cnn", ["yes", "no"], 0.02, **CNN)
    weights = load_file(headless / "model.safetensors")
    save_file({name: value for name, value in weights.items() if not name.startswith("classifier.")},
              headless / "model.safetensors", metadata={"format": "pt"})
    from hfspeech.export import export_onnx

    export_onnx(trained, root / "onnx")
    clip = root / "tone.wav"
    sf.write(clip, (0.3 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 16000)).astype(np.float32), 16000)
    return {"cnn": trained, "headless": headless, "onnx": root / "onnx", "clip": clip, "root": root}


def test_predict_runs_on_the_device_given(models, capsys):
    code, out, err = run_cli(["predict", str(models["cnn"]), str(models["clip"]), "--device", "cpu"], capsys)
    assert code == 0 and out.startswith(f"{models['clip']}: "), err


@NO_CUDA
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_cuda_device_that_is_not_here_is_one_line(models, command, capsys):
    args = [str(models["cnn"]), str(models["clip"])] if command == "predict" else \
        ["--model", str(models["cnn"]), "--data_dir", str(models["root"]), "--output_dir", str(models["root"] / "ev")]
    code, _, err = run_cli([command, *args, "--device", "cuda:1"], capsys)
    assert code == 2
    assert err == ("error: --device cuda:1: no CUDA device here; give --device cpu, or leave --device out to pick "
                   "one\n")


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_an_onnx_export_refuses_a_gpu_device_by_name(models, command, capsys):
    args = [str(models["clip"])] if command == "predict" else ["--port", "0"]
    code, _, err = run_cli([command, str(models["onnx"]), *args, "--device", "cuda"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: --device cuda: {models['onnx'] / 'model.onnx'} is an ONNX export, which runs on "
                          "the CPU only"), err


def test_a_misspelt_device_is_a_usage_error(models, capsys):
    code, _, err = run_cli(["predict", str(models["cnn"]), str(models["clip"]), "--device", "gpu"], capsys)
    assert (code, err) == (2, "error: argument --device: must be cpu, cuda, cuda:N or mps, got gpu\n")


@NO_CUDA
def test_stream_takes_device_and_refuses_one_not_here(models, capsys, monkeypatch):
    """The refusal in this process (as predict's and evaluate's above: it comes before any audio is read); the
    stream on the CPU in a real one, its audio piped into stdin."""
    with open(models["clip"], "rb") as audio:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(audio))
        code, _, err = run_cli(["stream", str(models["cnn"]), "--device", "cuda"], capsys)
    assert code == 2 and err.startswith("error: --device cuda: no CUDA device here"), err
    with open(models["clip"], "rb") as audio:
        on_cpu = subprocess.run([sys.executable, "-m", "hfspeech.cli", "stream", str(models["cnn"]), "--device",
                                 "cpu"], stdin=audio, capture_output=True, text=True, timeout=120)
    assert on_cpu.stdout.splitlines()[-1].startswith('{"event": "end"'), on_cpu.stderr


@NO_CUDA
def test_each_serve_worker_loads_on_the_device_of_its_settings(models):
    """The settings travel to `--workers N` processes as JSON: the device is among them, and the model loads there."""
    from hfspeech.serve.app import ServeSettings, create_app

    runner = create_app(ServeSettings(str(models["cnn"]), device="cuda")).state.runner

    async def load() -> None:
        runner.loaded = asyncio.Event()
        runner._load(asyncio.get_running_loop())

    asyncio.run(load())
    assert runner.classifier is None and runner.load_error.startswith("device='cuda': no CUDA device here")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_model_whose_head_was_never_trained_is_refused_in_one_line(models, command, capsys):
    folder = str(models["headless"])
    args = [folder, str(models["clip"])] if command == "predict" else \
        ["--model", folder, "--data_dir", str(models["root"]), "--output_dir", str(models["root"] / "ev2")]
    code, out, err = run_cli([command, *args], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {folder}: its classification head was never trained (classifier.bias, "
                          "classifier.weight not in the checkpoint"), err
    assert f"hfspeech train --model_name_or_path {folder}" in err
    assert "You should probably TRAIN" not in err  # transformers' note, said once, in hfspeech's line


def test_serve_refuses_a_model_whose_head_was_never_trained(models):
    from hfspeech.serve.launcher import ServerProcess

    with pytest.raises(RuntimeError, match="exited with 2") as stopped:
        with ServerProcess(models["headless"], startup_timeout=120):
            pass
    assert "its classification head was never trained" in str(stopped.value)


def test_python_api_warns_of_an_untrained_head_in_one_line_and_runs(models, caplog):
    """As transformers' pipeline does: it runs, with one warning naming the folder; a trained model is silent."""
    from hfspeech.inference.classifier import AudioClassifier

    with caplog.at_level(logging.WARNING):
        AudioClassifier.from_pretrained(str(models["cnn"]))
        assert not [r for r in caplog.records if "never trained" in r.getMessage()]
        classifier = AudioClassifier.from_pretrained(str(models["headless"]))
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert [m for m in messages if "its classification head was never trained" in m and str(models["headless"]) in m]
    assert not [m for m in messages if "newly initialized" in m and "never trained" not in m], messages
    assert classifier.classify_file(str(models["clip"]), top_k=1).labels[0] in ("yes", "no")


def test_training_keeps_the_users_transformers_verbosity(monkeypatch):
    import transformers

    from hfspeech.training.run_log import default_transformers_verbosity

    before = transformers.utils.logging.get_verbosity()
    try:
        monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
        transformers.utils.logging.set_verbosity_error()
        default_transformers_verbosity()
        assert transformers.utils.logging.get_verbosity() == logging.ERROR
        monkeypatch.delenv("TRANSFORMERS_VERBOSITY")
        default_transformers_verbosity()
        assert transformers.utils.logging.get_verbosity() == logging.WARNING
    finally:
        transformers.utils.logging.set_verbosity(before)


def test_the_trainer_orders_quick_checkpoints_without_the_mtime_note_and_leaves_other_warnings(models, tmp_path):
    from transformers import AutoModelForAudioClassification, TrainingArguments

    from hfspeech.training.trainer import AudioClassificationTrainer

    for step in (1, 2):  # saved within one second, as the checkpoints of every short run are
        (tmp_path / f"checkpoint-{step}").mkdir()
    trainer = AudioClassificationTrainer(model=AutoModelForAudioClassification.from_pretrained(models["cnn"]),
                                         args=TrainingArguments(output_dir=str(tmp_path), report_to=[]))
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ordered = trainer._sorted_checkpoints(output_dir=str(tmp_path), use_mtime=True)
        warnings.warn("mtime may not be reliable, said by someone else", UserWarning)
    assert [Path(path).name for path in ordered] == ["checkpoint-1", "checkpoint-2"]
    assert [str(w.message) for w in caught if "mtime" in str(w.message)] == [
        "mtime may not be reliable, said by someone else"]
    assert warnings.filters == filters


def test_quantizing_from_python_hides_the_image_processor_note(models, tmp_path):
    from hfspeech.export import export_onnx

    seen: list = []
    handler = logging.Handler()
    handler.emit = seen.append
    note = logging.getLogger("transformers.models.auto.image_processing_auto")
    logging.getLogger("transformers").addHandler(handler)
    try:
        export_onnx(models["cnn"], tmp_path / "onnx", quantize="int8")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert (tmp_path / "onnx" / "model_quantized.onnx").is_file()
    assert not [r for r in seen if "image processor" in r.getMessage()], [r.getMessage() for r in seen]
    assert not note.filters  # only while quantizing: the logger is left as it was
