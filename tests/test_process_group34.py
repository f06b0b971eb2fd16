"""A process of a multi-process launch ends the process group its command joined when the command returns: left to
interpreter exit, gloo's threads could be torn down still joinable and a finished process died of SIGABRT
("terminate called without an active exception"), failing the whole `accelerate launch` (once in CI,
tests/test_distributed29.py). A group the caller had joined before calling `main` stays the caller's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A command that joins a one-process gloo group as accelerate's state does inside `train` (then returns, or is
# refused as a mistake), registered beside the real ones; or a caller that joined one before calling `main`.
SCRIPT = """
import sys, types, torch
import hfspeech.cli as cli
from hfspeech.errors import UsageError

def join():
    torch.distributed.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)

def joining_command(argv):
    join()
    if argv:
        raise UsageError("refused after joining the group")
    return 0

sys.modules["hfspeech.cli.joining"] = types.SimpleNamespace(joining_command=joining_command)
cli.COMMANDS["join-group"] = ("joining", "joining_command")
if sys.argv[2] == "caller":
    join()
    code = cli.main(sys.argv[3:])
    torch.distributed.barrier()  # the caller's next collective
else:
    code = cli.main(sys.argv[2:])
print("code", code, "in a group", torch.distributed.is_initialized())
"""


def run_script(tmp_path: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "store"), *args], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_command_that_joined_a_group_leaves_it_when_it_returns(tmp_path):
    assert "code 0 in a group False" in run_script(tmp_path, "join-group")


def test_a_command_refused_as_a_mistake_leaves_it_too(tmp_path):
    assert "code 2 in a group False" in run_script(tmp_path, "join-group", "--refuse")


def test_a_group_the_caller_joined_stays_the_callers(tmp_path):
    """Review R1: a script under torchrun that called `main` lost its own group, its next collective refused."""
    out = run_script(tmp_path, "caller", "tiny-model", str(tmp_path / "tiny"), "--model_type", "wav2vec2")
    assert "code 0 in a group True" in out
