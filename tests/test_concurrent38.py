"""Processes at once on one machine: a conversion in progress, a run still training, a killed run's leftovers, and
`--backend` on a run holding its exports.

The other process is a real one (a subprocess holding the same `flock` the writer holds); no weights are converted
and nothing is trained: a converted folder and a run's folder are faked, as in tests/test_concurrency27.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hfspeech.folder_writers import being_written
from tests.conftest import run_cli_output, save_random_baseline, write_tone_folder

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")

# Holds argv[1] as `train` (`held_alone`) and `hfspeech pretrained` (`converting_alone`) do, until stdin closes; with
# argv[2], for a second, then writes a converted checkpoint named so there (renamed in whole, as the conversion is;
# none for "-": a conversion that failed) and lets go.
HOLD = """
import fcntl, json, os, sys, time
handle = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
if len(sys.argv) > 2:
    time.sleep(1)
if len(sys.argv) > 3:
    staged = os.path.join(sys.argv[1], ".staged")
    os.makedirs(staged)
    open(os.path.join(staged, "model.safetensors"), "wb").write(b"weights")
    json.dump({"sha256": json.loads(sys.argv[3])}, open(os.path.join(staged, "hfspeech_pretrained.json"), "w"))
    os.rename(staged, os.path.join(sys.argv[1], sys.argv[2]))
elif len(sys.argv) == 2:
    sys.stdin.read()
"""


def hold(folder: Path, *then: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), *then], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def let_go(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


# 1. `train --model_name_or_path whisper-tiny.en` while `hfspeech pretrained whisper-tiny.en` converts it

@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("HFSPEECH_CACHE", str(folder))
    return folder


def test_a_run_started_while_the_checkpoint_converts_waits_for_it(cache, capsys):
    """A CI matrix: the set-up job converts, the train jobs start beside it; they were told to run the very command
    that was running ("whisper-tiny.en is not in the cache: run `hfspeech pretrained whisper-tiny.en` once")."""
    from hfspeech.models.whisper.pretrained import PRETRAINED, is_converted, resolve_pretrained

    sha256 = json.dumps([wheel.sha256 for wheel in PRETRAINED["whisper-tiny.en"].wheels])
    holder = hold(cache, "whisper-tiny.en", sha256)
    try:
        assert resolve_pretrained("whisper-tiny.en") == str(cache / "whisper-tiny.en")
    finally:
        let_go(holder)
    assert is_converted(cache / "whisper-tiny.en", PRETRAINED["whisper-tiny.en"])
    waited = capsys.readouterr().err.strip().splitlines()
    assert waited == [f"waiting for another `hfspeech pretrained` converting whisper-tiny.en into {cache} ..."], waited


def test_a_conversion_that_stops_without_the_checkpoint_is_waited_for_then_refused_as_before(cache, capsys):
    from hfspeech.models.whisper.pretrained import PretrainedError, resolve_pretrained

    holder = hold(cache, "-")
    try:
        with pytest.raises(PretrainedError, match="whisper-tiny.en is not in the cache .*run `hfspeech pretrained"):
            resolve_pretrained("whisper-tiny.en")
    finally:
        let_go(holder)
    assert "waiting for another `hfspeech pretrained`" in capsys.readouterr().err


def test_a_conversion_of_another_checkpoint_is_not_waited_for(cache, capsys):
    """The lock covers the whole cache: a train of whisper-tiny.en waited for whisper-base's conversion, then was
    refused all the same (R2). The converting process says which checkpoint it converts."""
    from hfspeech.models.whisper.pretrained import CONVERTING, PretrainedError, resolve_pretrained

    (cache / CONVERTING).write_text("whisper-base", encoding="utf-8")
    holder = hold(cache)
    try:
        with pytest.raises(PretrainedError, match="whisper-tiny.en is not in the cache"):
            resolve_pretrained("whisper-tiny.en")
    finally:
        let_go(holder)
    assert "waiting" not in capsys.readouterr().err


def test_a_conversion_says_which_checkpoint_while_it_holds_the_cache(cache):
    from hfspeech.models.whisper.pretrained import CONVERTING, converting_alone

    with converting_alone(cache / "whisper-base"):
        assert (cache / CONVERTING).read_text(encoding="utf-8") == "whisper-base"
    assert not (cache / CONVERTING).exists()


def test_no_conversion_running_is_refused_at_once_without_waiting(cache, capsys):
    from hfspeech.models.whisper.pretrained import PretrainedError, resolve_pretrained

    with pytest.raises(PretrainedError, match="is not in the cache"):
        resolve_pretrained("whisper-tiny.en")
    assert "waiting" not in capsys.readouterr().err


# 2. `predict RUN` / `export RUN` while the run is in its first epoch

@pytest.fixture
def run_in_first_epoch(tmp_path) -> Path:
    """A run's folder as `train` leaves it before its first save: its record and a checkpoint being written."""
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "run_inputs.json").write_text("{}")
    return run


def test_being_written_is_true_only_while_another_process_holds_the_folder(run_in_first_epoch, tmp_path):
    assert not being_written(run_in_first_epoch) and not being_written(tmp_path / "missing")
    holder = hold(run_in_first_epoch)
    try:
        assert being_written(run_in_first_epoch) and being_written(run_in_first_epoch)  # the probe let go
    finally:
        let_go(holder)
    assert not being_written(run_in_first_epoch)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="who holds a lock is read from Linux's /proc/locks")
def test_a_folder_this_process_holds_is_not_another_writers(run_in_first_epoch):
    """`train --model_name_or_path RUN --output_dir RUN`, RUN holding no model: train holds RUN, then checks it as
    the model to start from; it was told a training run was writing RUN (its own)."""
    from hfspeech.models.folder_checks import NotAModelError, check_model_folder
    from hfspeech.output_folders import held_alone

    with held_alone(run_in_first_epoch, "in use"):
        assert not being_written(run_in_first_epoch)
        with pytest.raises(NotAModelError, match="resume with --resume_from_checkpoint"):
            check_model_folder(str(run_in_first_epoch))


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_run_still_training_is_said_to_be_written_not_stopped(run_in_first_epoch, command, capsys):
    holder = hold(run_in_first_epoch)
    try:
        code, _, err = run_cli_output([command, str(run_in_first_epoch), *["clip.wav"] * (command == "predict")],
                                      capsys)
    finally:
        let_go(holder)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {run_in_first_epoch}: a training run (or an average) is writing this folder now (no model saved "
        "yet); wait for it to end"], err


def test_a_run_stopped_before_its_save_is_still_told_to_resume(run_in_first_epoch, capsys):
    code, _, err = run_cli_output(["predict", str(run_in_first_epoch), "clip.wav"], capsys)
    assert code == 2 and "resume with --resume_from_checkpoint" in err, err


# 3. a killed run's `.KEY-partial-*` beside the audio folder's listing another run saved

def test_a_killed_runs_listing_scratch_folder_is_removed_by_the_next_run(tmp_path):
    from hfspeech.data.loading import load_audio_dataset
    from hfspeech.output_folders import locked_scratch

    data, cache = write_tone_folder(tmp_path / "data", clips_per_class=4, rates=(16000,)), str(tmp_path / "ds")
    load_audio_dataset(data_dir=str(data), cache_dir=cache)
    (listing,) = (tmp_path / "ds" / "hfspeech-audiofolder").iterdir()
    killed = listing.with_name(f".{listing.name}-partial-k1ll3d00")  # as `locked_scratch` names it, no lock held
    killed.mkdir()
    (killed / "half-saved.arrow").write_bytes(b"x" * 1000)
    live, handle = locked_scratch(listing)  # a live run's, locked: kept
    try:
        load_audio_dataset(data_dir=str(data), cache_dir=cache)
        assert not killed.exists() and live.is_dir()
    finally:
        shutil.rmtree(live)
        os.close(handle)


# 4. `predict RUN --backend onnx|torchscript` on a run holding its export

@pytest.fixture(scope="module")
def run_with_exports(tmp_path_factory) -> Path:
    from hfspeech.cli import main as cli

    run = save_random_baseline(tmp_path_factory.mktemp("cnn") / "run", "cnn", ["low", "high", "noise"], 0.5,
                               conv_channels=[4, 8], n_mels=16, max_length_seconds=0.5)
    for kind in ("onnx", "torchscript"):
        assert cli(["export", str(run), "--format", kind]) == 0
    write_tone_folder(run.parent / "clips", clips_per_class=1, rates=(16000,))
    return run


@pytest.mark.parametrize("backend,file", [("onnx", "onnx/model.onnx"),
                                          ("torchscript", "torchscript/model.torchscript.pt")])
def test_backend_on_a_run_runs_its_own_export_and_says_which_file(run_with_exports, backend, file, capsys, caplog):
    """`--backend` forces the backend "for a folder holding several": on a run it was refused ("RUN/model.onnx: no
    such exported model file")."""
    clip = str(next((run_with_exports.parent / "clips" / "high").iterdir()))
    code, forced, err = run_cli_output(["predict", str(run_with_exports), clip, "--backend", backend], capsys)
    assert code == 0, err
    assert f"backend {backend} runs {run_with_exports / file}" in caplog.text
    assert run_cli_output(["predict", str((run_with_exports / file).parent), clip], capsys)[1] == forced


def test_backend_on_a_run_with_two_such_exports_names_them(run_with_exports, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_with_exports, run)
    shutil.copytree(run / "onnx", run / "onnx-int8")
    code, _, err = run_cli_output(["predict", str(run), "clip.wav", "--backend", "onnx"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {run}: --backend onnx: the run holds 2 onnx exports ({run / 'onnx'}, {run / 'onnx-int8'}); give "
        "the one to run instead of the run folder"], err


def test_backend_on_a_run_without_such_an_export_names_the_command_that_writes_it(run_with_exports, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_with_exports, run, ignore=shutil.ignore_patterns("onnx"))
    code, _, err = run_cli_output(["predict", str(run), "clip.wav", "--backend", "onnx"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {run / 'model.onnx'}: no such exported model file; {run} is a model folder: predict its export "
        f"folder (the run has no onnx export: `hfspeech export {run} --format onnx` writes {run / 'onnx'})"], err


def test_a_conversion_into_a_users_own_folder_writes_nothing_beside_it(cache, tmp_path):
    """`.hfspeech-converting` is the cache's: `hfspeech pretrained NAME --output_dir ~/models/tiny` must not leave
    it in ~/models (a killed conversion would leave it there for good)."""
    from hfspeech.models.whisper.pretrained import converting_alone

    (tmp_path / "models").mkdir()
    with converting_alone(tmp_path / "models" / "tiny"):
        assert os.listdir(tmp_path / "models") == []


def test_a_conversion_that_fails_leaves_no_marker(cache):
    from hfspeech.models.whisper.pretrained import CONVERTING, converting_alone

    with pytest.raises(RuntimeError):
        with converting_alone(cache / "whisper-base"):
            raise RuntimeError("the wheel could not be fetched")
    assert not (cache / CONVERTING).exists()  # a stale one named a checkpoint no one converts (R3)

