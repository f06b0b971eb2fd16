"""A process of a launched run whose step fails alone in a way `agreed` did not carry: an error whose str() raises, a
Ctrl-C or `sys.exit` on that process, an optional package missing on its machine. The first two left `agreed`
before the gather (the others waited in it, then died of gloo's "Connection closed by peer" or, here, were paired
with the wrong step); the third was carried as a bug ("an unexpected error") in place of the install hint a run of
one process gives (`training.distributed.agreed`)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import torch
import torch.distributed
import torch.multiprocessing

from hfspeech.errors import HfspeechError
from hfspeech.training.distributed import agreed, values_of_every_process
from tests.test_distributed import free_port
from tests.test_multiprocess43 import raising_on_rank_one

EXPORT_HINT = ("hfspeech train needs onnxruntime, which could not be imported: install hfspeech's 'export' extra (pip "
               "install \"hfspeech[export]\", with the project's constraints.txt for the tested versions)")


class UnreadableError(Exception):
    """A library's error whose message cannot be made (a __str__ that fails)."""

    def __str__(self):
        raise ValueError("no message")


def outcome_of(step) -> str:
    """What `agreed(step)` did on this process, as text (a stop caught too: the test goes on to the next step)."""
    try:
        return f"went on with {agreed(step)}"
    except HfspeechError as error:
        return f"{type(error).__name__}: {error}"
    except (Exception, KeyboardInterrupt, SystemExit) as error:  # noqa: BLE001 (its own, raised again)
        return f"raised its own {type(error).__name__}"


def one_process_of_two(rank: int, port: int, folder: str) -> None:
    """One process of a gloo group of two, its own machine; a short timeout: a process left waiting fails the test in
    seconds."""
    os.environ["GROUP_RANK"] = str(rank)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                                         timeout=datetime.timedelta(seconds=20))
    try:
        outcomes = [
            outcome_of(raising_on_rank_one(rank, UnreadableError())),
            outcome_of(raising_on_rank_one(rank, KeyboardInterrupt())),
            outcome_of(raising_on_rank_one(rank, SystemExit(3))),
            outcome_of(raising_on_rank_one(rank, ModuleNotFoundError("No module named 'onnxruntime'",
                                                                     name="onnxruntime"))),
            outcome_of(raising_on_rank_one(rank, OSError("cannot load library 'libsndfile.so': no such file"))),
            f"still in step: {values_of_every_process(rank)}",
        ]
    except Exception as error:  # noqa: BLE001 (a process paired with the wrong step, or left waiting)
        outcomes = [f"out of step: {type(error).__name__}: {error}"]
    Path(folder, f"rank{rank}.txt").write_text("\n".join(outcomes), encoding="utf-8")
    torch.distributed.destroy_process_group()


def test_a_lone_unreadable_error_stop_or_missing_package_is_said_on_every_process(tmp_path):
    # Forked, not spawned: each child shares this process's imports (a spawned one imported torch, transformers and
    # this module again, ~11 CPU s a child); what is tested is the pair's steps through `agreed`, not its start.
    torch.multiprocessing.start_processes(one_process_of_two, args=(free_port(), str(tmp_path)), nprocs=2,
                                          join=True, start_method="fork")
    outcomes = [(tmp_path / f"rank{rank}.txt").read_text(encoding="utf-8").splitlines() for rank in (0, 1)]
    assert [len(each) for each in outcomes] == [6, 6], outcomes
    (unreadable, interrupted, exited, no_package, no_library, in_step), mine = outcomes
    assert unreadable == ("HfspeechError: process 1 (machine 1): failed with UnreadableError: <exception str() "
                          "failed> (an unexpected error: its traceback is in that process's output)")
    assert interrupted == "HfspeechError: process 1 (machine 1): stopped (KeyboardInterrupt)"
    assert exited == "HfspeechError: process 1 (machine 1): stopped (SystemExit: 3)"
    assert mine[:3] == ["raised its own UnreadableError", "raised its own KeyboardInterrupt",
                        "raised its own SystemExit"]  # as alone: its traceback, the CLI's "interrupted", its code
    for line in (no_package, mine[3]):
        assert line == f"HfspeechError: process 1 (machine 1): {EXPORT_HINT}"
    for line in (no_library, mine[4]):
        assert line.startswith("HfspeechError: process 1 (machine 1): hfspeech train needs libsndfile, which "
                               "soundfile could not load"), line
    assert in_step == mine[5] == "still in step: [0, 1]"


def test_one_process_says_the_same_install_hint_as_the_command_line():
    from hfspeech.cli.system_errors import machine_refusal as said_by_the_cli
    from hfspeech.machine_refusals import machine_refusal

    missing = ModuleNotFoundError("No module named 'optimum.onnxruntime'", name="optimum.onnxruntime")
    assert str(machine_refusal(missing, "distill")) == str(said_by_the_cli(missing, "distill"))
