"""A process of a multi-process run that fails alone with what is not an hfspeech error: what its machine refused (a
full disk there, memory short) stops every process with the one line the CLI says for it in one process; a bug keeps
its traceback on its own process, and the others say which process failed and with what. Both used to leave the
others in their next collective, dying of gloo's "Connection closed by peer" (`training.distributed.agreed`).
"""

from __future__ import annotations

import datetime
import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed
import torch.multiprocessing

from hfspeech.errors import HfspeechError
from hfspeech.training.distributed import agreed, values_of_every_process
from tests.test_distributed import free_port
from tests.test_multimachine41 import exited_on_the_line, launch_two_machines

FULL_CACHE = "/data/cache/train-00000.arrow"


def raising_on_rank_one(rank: int, error: BaseException):
    """A step that raises `error` on process 1 and returns its rank on the others."""
    def step():
        if rank == 1:
            raise error
        return rank
    return step


def outcome_of(step) -> str:
    """What `agreed(step)` did on this process, as text for the test to compare across processes."""
    try:
        return f"went on with {agreed(step)}"
    except HfspeechError as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # noqa: BLE001 (the bug itself, raised again on its own process)
        return f"raised its own {type(error).__name__}: {error}"


def one_process_of_two(rank: int, port: int, folder: str) -> None:
    """One process of a gloo group of two (its own machine, as torchrun's GROUP_RANK says); what each step through
    `agreed` did is written to `folder/rank<i>.txt`. A short timeout: a process left waiting fails the test in
    seconds, not in gloo's 30 minutes."""
    os.environ["GROUP_RANK"] = str(rank)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                                         timeout=datetime.timedelta(seconds=20))
    try:
        outcomes = [
            outcome_of(raising_on_rank_one(rank, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), FULL_CACHE))),
            outcome_of(raising_on_rank_one(rank, MemoryError())),
            outcome_of(raising_on_rank_one(rank, ZeroDivisionError("division by zero"))),  # a bug
            f"still in step: {values_of_every_process(rank)}",
        ]
        Path(folder, f"rank{rank}.txt").write_text("\n".join(outcomes), encoding="utf-8")
    finally:
        torch.distributed.destroy_process_group()


def test_a_machine_refusal_on_one_process_is_its_line_everywhere_and_a_bug_is_named(tmp_path):
    # Forked, not spawned: each child shares this process's imports (a spawned one imported torch, transformers and
    # this module again, ~11 CPU s a child); what is tested is the pair's steps through `agreed`, not its start.
    torch.multiprocessing.start_processes(one_process_of_two, args=(free_port(), str(tmp_path)), nprocs=2,
                                          join=True, start_method="fork")
    outcomes = [(tmp_path / f"rank{rank}.txt").read_text(encoding="utf-8").splitlines() for rank in (0, 1)]
    for rank, (full_disk, no_memory, bug, in_step) in enumerate(outcomes):
        assert full_disk == (f"OutputWriteError: process 1 (machine 1): {FULL_CACHE}: cannot write (No space left on "
                             "device); a disk it writes to is full or read-only; make room, or write elsewhere, and "
                             "run again")
        assert no_memory == ("HfspeechError: process 1 (machine 1): out of memory; lower --per_device_train_batch_size "
                             "/ --per_device_eval_batch_size, or use --dataloader_num_workers 0")
        assert in_step == "still in step: [0, 1]"
    assert outcomes[1][2] == "raised its own ZeroDivisionError: division by zero"  # its traceback, from the CLI
    assert outcomes[0][2] == ("HfspeechError: process 1 (machine 1): failed with ZeroDivisionError: division by zero "
                              "(an unexpected error: its traceback is in that process's output)")


def test_one_process_raises_its_own_error_as_it_was():
    for error in (OSError(errno.ENOSPC, "No space left on device"), ZeroDivisionError("x")):
        with pytest.raises(type(error)) as raised:
            agreed(raising_on_rank_one(1, error))
        assert raised.value is error  # the CLI's catch-all words it, as before


def test_weights_cut_short_on_one_machine_stop_both_machines_with_its_line(few_tones, tmp_path):
    """`--model_name_or_path model`, relative: each machine's own copy, and machine 1's weights file was cut short (a
    copy interrupted). Its config and feature extractor load (the agreed `model_inputs`); the weights load only when
    the model is built, after the data check, outside any gather: machine 1 said its line and left, and machine 0
    died in DDP's first collective. Building the model is an agreed step now."""
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    save_tiny_ssl_model(str(tmp_path / "m0" / "model"), "wav2vec2", ["high", "low", "noise"])
    shutil.copytree(tmp_path / "m0" / "model", tmp_path / "m1" / "model")
    weights = tmp_path / "m1" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    results = launch_two_machines(tmp_path, few_tones, ["--output_dir", "runs/x", "--model_name_or_path", "model",
                                                          "--config_overrides", "{}"])  # (the CNN's: last wins)
    lines = [[line for line in output.splitlines() if line.startswith("error: ")] for _, output in results]
    assert lines[0] == lines[1] and len(lines[0]) == 1, [output[-3000:] for _, output in results]
    assert lines[0][0].startswith("error: process 1 (machine 1): model/model.safetensors: corrupt or truncated"), lines
    for status, output in results:
        assert status != 0 and exited_on_the_line(output), output[-3000:]
        assert "Connection closed" not in output, output[-3000:]
