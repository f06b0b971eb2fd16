"""A process of a multi-process launch ends its process group when its command returns: left to interpreter exit,
gloo's threads could be torn down still joinable and a finished process died of SIGABRT ("terminate called without
an active exception"), failing the whole `accelerate launch` (once in CI, tests/test_distributed29.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, torch
torch.distributed.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
from hfspeech.cli import main
code = main(sys.argv[2:])
print("code", code, "group left", torch.distributed.is_initialized())
"""


def run_in_group(tmp_path: Path, *args: str) -> str:
    """`hfspeech ARGS` in a fresh Python that joined a one-process gloo group first, as a launched process has."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "store"), *args], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_command_that_returns_leaves_its_process_group(tmp_path):
    out = run_in_group(tmp_path, "tiny-model", str(tmp_path / "tiny"), "--model_type", "wav2vec2")
    assert "code 0 group left False" in out


def test_a_command_refused_as_a_mistake_leaves_it_too(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    out = run_in_group(tmp_path, "tiny-model", str(tmp_path / "a-file" / "tiny"), "--model_type", "wav2vec2")
    assert "code 2 group left False" in out
