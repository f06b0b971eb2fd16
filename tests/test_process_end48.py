"""A process whose command joined a process group and left it ends without Python's teardown, after the parts of it
that matter (`hfspeech.cli.process_end`); any other process ends as before. Each case is a fresh process running
`end_process(main([...]))` as recipes/finetune.py does, with a command registered beside the real ones that joins
a one-process gloo group (as accelerate's state does inside `train`) or not, starts a non-daemon thread that writes
a file late, and is refused in one line; an atexit handler says it ran, and an object left in `__main__` says when
the teardown deletes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import atexit, sys, threading, time, types
import hfspeech.cli as cli
from hfspeech.cli import end_process
from hfspeech.errors import UsageError

class TornDown:
    def __del__(self):
        print("torn down", flush=True)

left_in_main = TornDown()
atexit.register(lambda: print("atexit ran"))

def late_write(path):
    time.sleep(0.5)
    with open(path, "w") as file:
        file.write("written")

def command(argv):
    if argv[0] == "join":
        import torch
        torch.distributed.init_process_group("gloo", init_method="file://" + argv[1] + "-store", rank=0,
                                             world_size=1)
    threading.Thread(target=late_write, args=(argv[1],)).start()
    print("said before the end", end="")  # no newline, no flush: stdout is a pipe, so still in its buffer
    raise UsageError("refused after its work")

sys.modules["hfspeech.cli.ending"] = types.SimpleNamespace(command=command)
cli.COMMANDS["end-test"] = ("ending", "command")
end_process(cli.main(["end-test", *sys.argv[1:]]))
"""


def run_case(tmp_path: Path, join: str) -> tuple[subprocess.CompletedProcess, Path]:
    late_file = tmp_path / f"late-{join}"
    result = subprocess.run([sys.executable, "-c", SCRIPT, join, str(late_file)], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    return result, late_file


@pytest.mark.parametrize("join", ["join", "alone"])
def test_a_process_ends_with_its_code_its_threads_joined_atexit_run_and_its_output_flushed(tmp_path, join):
    result, late_file = run_case(tmp_path, join)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: refused after its work" in result.stderr
    assert result.stdout.startswith("said before the end"), result.stdout
    assert "atexit ran" in result.stdout
    assert late_file.read_text() == "written"


def test_only_a_process_that_left_a_process_group_skips_the_teardown(tmp_path):
    """The teardown (which aborted in C++ now and then after a group) is skipped there alone: the object left in
    `__main__` is deleted at the end of the process that never joined one, not of the one that left its group."""
    left, _ = run_case(tmp_path, "join")
    alone, _ = run_case(tmp_path, "alone")
    assert "torn down" not in left.stdout, left.stdout
    assert "torn down" in alone.stdout, alone.stdout
