"""Rules that lived twice, now stated once: each test fails if the two entry points drift apart again.

- a checkpoint's full disk (`training.checkpoints.checkpoint_write_errors`) is `errors.writing_to`, worded for it;
- the sample-level rule (NaN/inf, beyond 2**24 x full scale) is one wording for the extractors and for files/arrays;
- a `--device` of the wrong form is one check and one wording for predict/stream/serve and evaluate.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest
import soundfile as sf

from hfspeech.errors import OutputWriteError, UsageError, writing_to

THEN = "make room and run the same command again: it resumes from the last complete checkpoint"


class SafetensorError(Exception):
    """Named as safetensors' own: `disk_write_failure` tells it by its type's name."""


FULL_DISK_FAILURES = [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EROFS, "Read-only file system"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
    SafetensorError("I/O error: File too large (os error 27)"),
]


def refusal(wrapper, error: BaseException) -> BaseException:
    """What `wrapper` turns `error`, raised inside it, into (the error itself when left alone)."""
    try:
        with wrapper:
            raise error
    except BaseException as raised:  # noqa: BLE001 -- the test compares whatever comes out
        return raised
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("failure", FULL_DISK_FAILURES, ids=type)
def test_a_checkpoint_full_disk_is_writing_to_in_the_checkpoints_words(failure):
    from hfspeech.training.checkpoints import checkpoint_write_errors

    checkpoint = refusal(checkpoint_write_errors("runs/kws"), failure)
    generic = refusal(writing_to("runs/kws", THEN, what="a checkpoint"), failure)
    assert isinstance(checkpoint, OutputWriteError) and str(checkpoint) == str(generic)
    assert str(checkpoint).startswith("runs/kws: cannot write a checkpoint (") and checkpoint.__cause__ is failure
    # Without `what`, every other save keeps its own wording.
    assert str(refusal(writing_to("out.csv", "redo it"), failure)).startswith("out.csv: cannot write (")


@pytest.mark.parametrize("other", [RuntimeError("not a write"), OSError(errno.ENOENT, "No such file"),
                                   UsageError("--flag: already one line")], ids=type)
def test_a_checkpoint_wrapper_leaves_alone_what_writing_to_leaves_alone(other):
    from hfspeech.training.checkpoints import checkpoint_write_errors

    assert refusal(checkpoint_write_errors("runs/kws"), other) is other
    assert refusal(writing_to("runs/kws", THEN), other) is other


def extractor_problem(clip) -> str:
    from hfspeech.features.waveform import check_waveforms

    with pytest.raises(ValueError) as raised:
        check_waveforms([np.zeros(10, np.float32), clip])
    return str(raised.value)


def array_problem(clip) -> str:
    from hfspeech.inference.waveforms import mono_samples

    with pytest.raises(UsageError) as raised:
        mono_samples(clip)
    return str(raised.value)


def file_problem(path) -> str:
    from hfspeech.data.audio import AudioFileError, decode_audio

    with pytest.raises(AudioFileError) as raised:
        decode_audio(str(path), 16000)
    return str(raised.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e20, -3e38])
def test_the_level_rule_has_one_wording_for_extractors_arrays_and_files(tmp_path, bad):
    clip = np.full(1600, 0.1, dtype=np.float32)
    clip[7] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, clip, 16000, subtype="FLOAT")
    problems = {extractor_problem(clip).removeprefix("input 1: "), array_problem(clip).removeprefix("waveform: "),
                file_problem(path).removeprefix(f"{path}: ")}
    assert len(problems) == 1, problems
    expected = "audio contains NaN or infinite samples" if not np.isfinite(bad) else \
        f"samples reach {abs(bad):.3g}, over 16777216 times full scale (1.0): not audio levels"
    assert problems.pop().startswith(expected)


def test_the_level_limit_is_the_same_for_extractors_and_arrays():
    from hfspeech.features.waveform import check_waveforms
    from hfspeech.inference.waveforms import mono_samples

    at_limit = np.full(100, float(2**24), dtype=np.float32)
    check_waveforms([at_limit])  # both pass it: integer PCM written unscaled as float is a gain, not an error
    assert mono_samples(at_limit).max() == 2**24
    assert extractor_problem(np.nextafter(at_limit, np.inf)).startswith("input 1: samples reach")


def device_problem(command: str, device: str) -> str:
    """The one error line of `hfspeech COMMAND` given `--device DEVICE`, from the text after the flag's name."""
    import io
    from contextlib import redirect_stderr

    from hfspeech.cli import main

    args = {"evaluate": ["evaluate", "--model", "no-model", "--data_dir", "no-data"],
            "predict": ["predict", "no-model", "a.wav"], "stream": ["stream", "no-model"],
            "serve": ["serve", "no-model"]}[command]
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            code = main([*args, "--device", device])
        except SystemExit as stop:
            code = stop.code
    assert code == 2 and err.getvalue().count("\n") == 1, err.getvalue()
    return err.getvalue().split("--device: ", 1)[1]


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CUDA"])
def test_a_device_of_the_wrong_form_is_one_wording_in_every_command(device):
    problems = {command: device_problem(command, device) for command in ("predict", "stream", "serve", "evaluate")}
    assert set(problems.values()) == {f"must be cpu, cuda, cuda:N or mps, got {device}\n"}, problems


def test_every_device_form_the_flag_takes_is_one_torch_takes():
    import torch

    from hfspeech.inference.backends import device_form_problem

    for device in ("cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert device_form_problem(device) is None
        torch.device(device)
    for device in ("gpu", "cuda:", "cuda:-1", " cpu", "cpu,cuda"):
        assert device_form_problem(device) == f"must be cpu, cuda, cuda:N or mps, got {device}"
