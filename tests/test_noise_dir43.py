"""`--noise_dir` missing on one machine of a launched run: checked as the command line was read, machine 1 said its
line and left before the processes joined, and machine 0 waited minutes in gloo's set-up, then died of
DistNetworkError (audit MP, measured ~4 min). In a launched run each machine's copy is checked once the processes
have joined, through `agreed`: both say the same line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.test_multimachine41 import exited_on_the_line, launch_two_machines


def test_a_noise_folder_missing_on_one_machine_stops_both_with_its_line(tone_folder, tmp_path):
    for machine in (0, 1):
        shutil.copytree(tone_folder, tmp_path / f"m{machine}" / "data")
    (tmp_path / "m0" / "noise").mkdir()
    sf.write(tmp_path / "m0" / "noise" / "hum.wav", np.zeros(8000, np.float32), 16000)
    results = launch_two_machines(tmp_path, Path("data"), ["--output_dir", "runs/x", "--noise_dir", "noise"])
    lines = [[line for line in output.splitlines() if line.startswith("error: ")] for _, output in results]
    assert lines[0] and lines[0] == lines[1], [output[-3000:] for _, output in results]
    assert lines[0][0] == "error: process 1 (machine 1): --noise_dir 'noise' is not a folder", lines
    for status, output in results:
        assert status != 0 and exited_on_the_line(output), output[-3000:]
        assert "Connection closed" not in output and "DistNetworkError" not in output, output[-3000:]


def test_one_process_still_checks_the_noise_folder_as_the_command_line_is_read(monkeypatch, tmp_path):
    import pytest

    from hfspeech.errors import UsageError
    from hfspeech.training.command_line import parse_args

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UsageError, match=r"^--noise_dir '.*nothing' is not a folder$"):
        parse_args(["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run"),
                    "--noise_dir", str(tmp_path / "nothing")])
