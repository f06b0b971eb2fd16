"""A process of a multi-process run that fails alone, before the others' next collective: every process stops with
its one line. It used to say its line and leave, and the others, waiting in a gather, died of gloo's "Connection
closed by peer" traceback (`training.distributed.agreed`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed
import torch.multiprocessing

from hfspeech.errors import DataError, HfspeechError
from hfspeech.training.distributed import agreed, said, values_of_every_process
from tests.test_distributed import free_port
from tests.test_multimachine41 import exited_on_the_line, launch_two_machines

BAD_CLIP = "data/bad.wav: cannot be decoded (not an audio file)"


def step_failing_on(failing: set, rank: int, line: str = BAD_CLIP):
    """A step that raises the one-line `DataError` on the processes `failing`, and returns its rank on the others."""
    def step():
        if rank in failing:
            raise DataError(line)
        return rank
    return step


def outcome_of(step) -> str:
    """What `agreed(step)` did on this process, said as text for the test to compare across processes."""
    try:
        return f"went on with {agreed(step)}"
    except HfspeechError as error:
        return f"{type(error).__name__}: {error}"


def one_process_of_two(rank: int, port: int, folder: str) -> None:
    """One process of a gloo group of two (its own machine, as torchrun's GROUP_RANK says), taking steps through
    `agreed`; what each did is written to `folder/rank<i>.txt`."""
    os.environ["GROUP_RANK"] = str(rank)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        outcomes = [
            outcome_of(step_failing_on({1}, rank)),  # one process alone
            outcome_of(step_failing_on({0, 1}, rank)),  # every process: its line as it is
            outcome_of(step_failing_on({0, 1}, rank, f"data/bad{rank}.wav: cannot be decoded")),  # each its own
            outcome_of(step_failing_on(set(), rank)),  # none
            f"still in step: {values_of_every_process(rank)}",  # the group is still in step
        ]
        Path(folder, f"rank{rank}.txt").write_text("\n".join(outcomes), encoding="utf-8")
    finally:
        torch.distributed.destroy_process_group()


def test_a_step_failing_on_one_process_stops_every_process_with_its_line(tmp_path):
    # Forked, not spawned: each child shares this process's imports (a spawned one imported torch, transformers and
    # this module again, ~11 CPU s a child); what is tested is the pair's steps through `agreed`, not its start.
    torch.multiprocessing.start_processes(one_process_of_two, args=(free_port(), str(tmp_path)), nprocs=2,
                                          join=True, start_method="fork")
    outcomes = [(tmp_path / f"rank{rank}.txt").read_text(encoding="utf-8").splitlines() for rank in (0, 1)]
    for rank, (alone, everywhere, each_own, none, in_step) in enumerate(outcomes):
        assert alone == f"DataError: process 1 (machine 1): {BAD_CLIP}"
        assert everywhere == f"DataError: {BAD_CLIP}"
        assert each_own == ("DataError: process 0 (machine 0): data/bad0.wav: cannot be decoded; "
                            "process 1 (machine 1): data/bad1.wav: cannot be decoded")  # machine 0's alone misled
        assert none == f"went on with {rank}"
        assert in_step == "still in step: [0, 1]"


def test_one_process_takes_its_step_alone():
    assert agreed(lambda: 7) == 7
    with pytest.raises(DataError, match=f"^{re.escape(BAD_CLIP)}$"):
        agreed(step_failing_on({0}, 0))


def test_an_error_class_that_cannot_travel_is_said_as_an_hfspeech_error():
    class LocalError(HfspeechError):
        pass

    class TwoArgumentsError(HfspeechError):
        def __init__(self, path, reason):
            super().__init__(f"{path}: {reason}")

    assert said(DataError("x: bad")) == (DataError, "x: bad")
    assert said(LocalError("x: bad")) == (HfspeechError, "x: bad")
    assert said(TwoArgumentsError("x", "bad")) == (HfspeechError, "x: bad")


def test_a_bad_clip_on_one_machine_stops_both_machines_with_its_line(few_tones, tmp_path):
    """Two machines simulated on this host, each in its own working folder: a relative `--data_dir data` is each
    machine's own copy of the clips, and machine 1's has a clip that cannot be decoded (no --skip_bad_files)."""
    for machine in (0, 1):
        shutil.copytree(few_tones, tmp_path / f"m{machine}" / "data")
    bad = sorted((tmp_path / "m1" / "data").rglob("*.wav"))[0]
    bad.write_bytes(b"not a wav file at all" * 8)
    results = launch_two_machines(tmp_path, Path("data"), ["--output_dir", "runs/x"])
    lines = [[line for line in output.splitlines() if line.startswith("error: ")] for _, output in results]
    assert lines[0] and lines[0] == lines[1], [output[-3000:] for _, output in results]
    assert lines[0][0].startswith("error: process 1 (machine 1): ") and bad.name in lines[0][0], lines
    for status, output in results:  # the one traceback the launcher's own (ChildFailedError), none of a worker
        assert status != 0 and exited_on_the_line(output), output[-3000:]
        assert output.count("Traceback") == 1 and "ChildFailedError" in output, output[-3000:]
        assert "Connection closed" not in output, output[-3000:]


def test_a_manifest_missing_on_one_machine_stops_cross_validation_on_both(tone_folder, tmp_path):
    """cross-validate drew its folds (and checked its folder and model flags) outside any gather: machine 1 said its
    line and left, and machine 0 died of gloo's traceback (reviewer R1). Each machine reads `all.csv` in its own
    working folder, which machine 1 lacks."""
    rows = [f"{path},{path.parent.name},s{i % 2}" for i, path in enumerate(sorted(Path(tone_folder).rglob("*.wav")))]
    for machine in (0, 1):
        (tmp_path / f"m{machine}").mkdir()
    (tmp_path / "m0" / "all.csv").write_text("\n".join(["path,label,speaker", *rows]) + "\n", encoding="utf-8")
    results = launch_two_machines(tmp_path, None, ["--output_dir", "runs/cv"], program=[
        "-m", "hfspeech.cli", "cross-validate", "--train_file", "all.csv", "--group_column", "speaker"])
    lines = [[line for line in output.splitlines() if line.startswith("error: ")] for _, output in results]
    assert lines[0] and lines[0] == lines[1], [output[-3000:] for _, output in results]
    assert lines[0][0].startswith("error: process 1 (machine 1): ") and "all.csv" in lines[0][0], lines
    for status, output in results:
        assert status != 0 and "Connection closed" not in output, output[-3000:]
