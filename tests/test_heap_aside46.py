"""A CPU training session sets the process's objects aside from the garbage collector while it trains and puts them
back after (`training.train_session.heap_set_aside`): Trainer's full `gc.collect()` walked them all, 0.3 CPU s a run."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
import torch

from hfspeech.training.train_session import train_session


class StandInTrainer:
    """What `train_session` asks of a Trainer; its `train` notes how many objects the collector holds aside then."""

    def __init__(self, device: str):
        self.args = SimpleNamespace(device=torch.device(device))
        self.state = SimpleNamespace(global_step=0)
        self.frozen_while_training = None

    def add_callback(self, callback) -> None:
        pass

    def train(self, resume_from_checkpoint=None):
        self.frozen_while_training = gc.get_freeze_count()
        self.state.global_step = 1
        return SimpleNamespace(metrics={"train_loss": 0.5})


@pytest.fixture
def unfrozen():
    """The test process's own frozen objects (if any) put back first, and frozen again after."""
    had = gc.get_freeze_count()
    gc.unfreeze()
    yield
    if had:
        gc.freeze()


def test_a_cpu_session_trains_with_the_objects_set_aside_and_puts_them_back(unfrozen):
    trainer = StandInTrainer("cpu")
    assert train_session(trainer, None) == {"train_loss": 0.5}
    assert trainer.frozen_while_training > 1000  # the libraries' objects: torch and transformers are imported
    assert gc.get_freeze_count() == 0


def test_an_accelerator_session_and_a_process_that_froze_objects_itself_are_left_alone(unfrozen):
    on_accelerator, on_cpu = StandInTrainer("meta"), StandInTrainer("cpu")  # meta: any device but the CPU
    train_session(on_accelerator, None)
    assert on_accelerator.frozen_while_training == 0
    gc.freeze()  # the process's own policy: not undone when training ends, nor added to
    held = gc.get_freeze_count()
    train_session(on_cpu, None)
    assert on_cpu.frozen_while_training == held == gc.get_freeze_count()
    gc.unfreeze()


def test_an_error_in_training_puts_the_objects_back(unfrozen):
    trainer = StandInTrainer("cpu")
    trainer.train = lambda resume_from_checkpoint=None: 1 / 0
    with pytest.raises(ZeroDivisionError):
        train_session(trainer, None)
    assert gc.get_freeze_count() == 0
