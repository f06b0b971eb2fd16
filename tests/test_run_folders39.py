"""What a reader's probe, a killed run and a frozen-base run leave a run folder to the next run (session 39, LK).

1. `train` taking its folder while a reader (`folder_writers.being_written`: predict, serve, export, stage) held its
   one-call shared probe was refused "in use" (9% of 20,000 starts beside a tight probe loop).
2. A run killed during its final save left `.final-save-partial-*` (a whole model copy) until the next final save.
3. A `--freeze_base_model` run saved no training_args.bin, so an earlier run's stayed beside its model.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from hfspeech.errors import UsageError
from hfspeech.output_folders import held_alone
from tests.conftest import write_tone_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def locked(folder: Path, how: int) -> int:
    """A second open file description of `folder` holding a `flock` of kind `how`: another process's, to `flock`."""
    handle = os.open(folder, os.O_RDONLY)
    fcntl.flock(handle, how | fcntl.LOCK_NB)
    return handle


def held_by_someone(folder: Path) -> bool:
    probe = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(probe)
    return False


# 1. a reader's shared probe is waited out; a writer's exclusive hold is refused as before

def test_a_run_taking_its_folder_while_a_reader_probes_it_waits_the_probe_out(tmp_path):
    reader = locked(tmp_path, fcntl.LOCK_SH)  # let go in 50 ms, as `being_written` lets go after its one call
    letting_go = threading.Timer(0.05, os.close, [reader])
    letting_go.start()
    try:
        with held_alone(tmp_path, "in use"):
            assert held_by_someone(tmp_path)  # this run's exclusive lock
    finally:
        letting_go.join()
    assert not held_by_someone(tmp_path)



def test_a_conversion_starting_while_a_reader_probes_the_cache_does_not_say_it_waits(tmp_path, capsys):
    """`hfspeech pretrained` takes the cache folder as a run takes its own: `resolve_pretrained`'s probe
    (`wait_while_written`) in that instant printed "waiting for another `hfspeech pretrained`" (reviewer R1)."""
    from hfspeech.models.whisper.pretrained import converting_alone

    reader = locked(tmp_path, fcntl.LOCK_SH)
    letting_go = threading.Timer(0.05, os.close, [reader])
    letting_go.start()
    try:
        with converting_alone(tmp_path / "whisper-tiny.en"):
            assert held_by_someone(tmp_path)
    finally:
        letting_go.join()
    assert "waiting for another" not in capsys.readouterr().err


def test_a_folder_another_writer_holds_is_still_refused(tmp_path):
    writer = locked(tmp_path, fcntl.LOCK_EX)
    try:
        with pytest.raises(UsageError, match=f"^--output_dir {tmp_path}: in use$"):
            with held_alone(tmp_path, "in use", flag="--output_dir"):
                pass
    finally:
        os.close(writer)


# 2. a killed run's final-save folder goes when the next run takes the folder

def test_a_killed_runs_final_save_folder_goes_when_a_run_takes_the_folder(tmp_path):
    from transformers import TrainingArguments

    from hfspeech.training.checkpoints import output_dir_held

    run = tmp_path / "run"
    killed, live = run / ".final-save-partial-k1lled00", run / ".final-save-partial-l1ve0000"
    for folder in (killed, live):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"\0" * 100)
    live_lock = locked(live, fcntl.LOCK_EX)  # a run still saving (`output_folders.locked_scratch`)
    try:
        with output_dir_held(TrainingArguments(str(run), report_to=[], use_cpu=True)):
            assert not killed.exists() and (live / "model.safetensors").is_file()
    finally:
        os.close(live_lock)


# 3. a frozen-base run's folder holds its own training_args.bin

def test_a_frozen_base_run_leaves_its_own_training_arguments_not_an_earlier_runs(tmp_path):
    import torch
    from transformers import TrainingArguments

    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.training.run import main

    tiny = save_tiny_ssl_model(str(tmp_path / "tiny"), "wav2vec2", labels=["a", "b"], initializer_range=0.5)
    data = write_tone_folder(tmp_path / "tones", clips_per_class=8, rates=(16000,))
    run = tmp_path / "run"
    run.mkdir()
    torch.save(TrainingArguments(str(run), learning_rate=0.5, report_to=[]), run / "training_args.bin")  # earlier run
    main(["--model_name_or_path", str(tiny), "--data_dir", str(data), "--output_dir", str(run), "--freeze_base_model",
          "--num_train_epochs", "1", "--learning_rate", "3e-3", "--max_length_seconds", "0.5",
          "--per_device_train_batch_size", "8", "--save_strategy", "no", "--seed", "0"])
    saved = torch.load(run / "training_args.bin", weights_only=False)
    assert saved.learning_rate == 3e-3 and Path(saved.output_dir) == run
