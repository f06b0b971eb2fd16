"""What a training command called from Python puts back, finished (review R1 of tests/test_process_state35.py): a
caller's own Accelerator, made before `main(["train", ...])`, kept the run's device (`PartialState`, which the
caller's next `Accelerator()` merged in) and accumulation (`GradientState`); a handler the caller added to the root
logger during the run was taken off with the run's own."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from hfspeech.cli import main
from tests.test_process_state35 import quiet_transformers, tiny_train, users_process  # noqa: F401 (a fixture)


@pytest.fixture
def no_accelerator_yet(monkeypatch):
    """No ACCELERATE_* variable and none of accelerate's shared states set, before the test and after it."""
    from accelerate.state import AcceleratorState, GradientState

    for name in [name for name in os.environ if name.startswith("ACCELERATE_")]:
        monkeypatch.delenv(name)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_a_callers_accelerator_keeps_its_device_and_accumulation_after_a_train(no_accelerator_yet, tone_folder,
                                                                             tmp_path):
    """The caller's is made without `cpu` (on a GPU machine: CUDA), the run with --use_cpu and accumulation 1."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    callers = Accelerator(gradient_accumulation_steps=4)
    partial_before = dict(PartialState._shared_state)
    with users_process():
        assert main(tiny_train(tone_folder, tmp_path / "run", "--use_cpu", "--gradient_accumulation_steps", "1")) == 0
    assert dict(PartialState._shared_state) == partial_before  # was the run's: _cpu True
    assert callers.gradient_accumulation_steps == 4  # was 1
    Accelerator()  # the caller's next one merges PartialState into the shared AcceleratorState
    assert AcceleratorState._shared_state["_cpu"] is False and callers.state._cpu is False


def test_a_train_with_no_accelerator_before_leaves_none_and_its_own_arguments_whole(no_accelerator_yet, tone_folder,
                                                                                  tmp_path):
    """The run's state is its own copy: gone for the caller, still there for its TrainingArguments."""
    from accelerate.state import AcceleratorState, GradientState, PartialState
    from hfspeech.training.command_line import parse_args, process_state_kept
    from hfspeech.training.run import run_training

    with users_process(), process_state_kept():
        arguments = parse_args(tiny_train(tone_folder, tmp_path / "run", "--use_cpu")[1:])
        run_training(*arguments)
    assert (PartialState._shared_state, AcceleratorState._shared_state, GradientState._shared_state) == ({}, {}, {})
    assert (arguments[2].world_size, arguments[2].process_index) == (1, 0)


def test_a_root_handler_added_during_the_run_stays_the_callers(quiet_transformers, tone_folder, tmp_path):
    """Added by a `before_training` callback, after the set-up's `basicConfig`: only the set-up's is taken off."""
    from hfspeech.training.command_line import parse_args
    from hfspeech.training.run import run_training

    root, mine = logging.getLogger(), logging.StreamHandler(sys.stdout)
    with users_process() as before:
        arguments = parse_args(tiny_train(tone_folder, tmp_path / "run", "--use_cpu")[1:])
        run_training(*arguments, before_training=lambda setup: root.addHandler(mine))
        assert root.handlers == [mine] and root.level == before["root level"]


def test_a_callers_root_handler_is_never_taken_off(quiet_transformers):
    """A root logger with handlers gets none from `basicConfig`: nothing of the command's to take off."""
    from hfspeech.training.command_line import process_state_kept

    root, mine, later = logging.getLogger(), logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stdout)
    with users_process():
        root.addHandler(mine)
        with process_state_kept():
            logging.basicConfig(level=logging.INFO)
            root.addHandler(later)
        assert root.handlers == [mine, later]
