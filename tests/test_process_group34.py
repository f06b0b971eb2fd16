"""A process of a multi-process launch ends the process group its command joined when the command returns: left to
interpreter exit, gloo's threads could be torn down still joinable and a finished process died of SIGABRT
("terminate called without an active exception"), failing the whole `accelerate launch` (once in CI,
tests/test_distributed29.py). A group the caller had joined before calling `main` stays the caller's.

The three cases run one after another in one fresh process (torch imported once); a case that leaves a group behind
is cleaned up after its line is printed, so it fails only its own test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A command that joins a one-process gloo group as accelerate's state does inside `train` (then returns, or is
# refused as a mistake), registered beside the real ones; or a caller that joined one before calling `main`.
SCRIPT = """
import itertools, sys, types, torch
import hfspeech.cli as cli
from hfspeech.errors import UsageError

stores = (f"{sys.argv[1]}-{n}" for n in itertools.count())

def join():
    torch.distributed.init_process_group("gloo", init_method="file://" + next(stores), rank=0, world_size=1)

def joining_command(argv):
    join()
    if argv:
        raise UsageError("refused after joining the group")
    return 0

def report(case, code):
    print(case, "code", code, "in a group", torch.distributed.is_initialized(), flush=True)
    if torch.distributed.is_initialized():  # left behind: the next case starts outside any group all the same
        torch.distributed.destroy_process_group()

sys.modules["hfspeech.cli.joining"] = types.SimpleNamespace(joining_command=joining_command)
cli.COMMANDS["join-group"] = ("joining", "joining_command")
report("returned:", cli.main(["join-group"]))
report("refused:", cli.main(["join-group", "--refuse"]))
join()
code = cli.main(sys.argv[2:])
torch.distributed.barrier()  # the caller's next collective
print("caller:", "code", code, "in a group", torch.distributed.is_initialized())
"""


@pytest.fixture(scope="module")
def case_lines(tmp_path_factory) -> list[str]:
    """The script's line for each case; the caller's command is `hfspeech tiny-model`."""
    tmp_path = tmp_path_factory.mktemp("groups")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "store"), "tiny-model",
                             str(tmp_path / "tiny"), "--model_type", "wav2vec2"], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def test_a_command_that_joined_a_group_leaves_it_when_it_returns(case_lines):
    assert "returned: code 0 in a group False" in case_lines, case_lines


def test_a_command_refused_as_a_mistake_leaves_it_too(case_lines):
    assert "refused: code 2 in a group False" in case_lines, case_lines


def test_a_group_the_caller_joined_stays_the_callers(case_lines):
    """Review R1: a script under torchrun that called `main` lost its own group, its next collective refused."""
    assert "caller: code 0 in a group True" in case_lines, case_lines
