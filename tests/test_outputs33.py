"""Resuming a `predict --output` file the run may not write (a read-only disk or a file of another user's)."""

import errno
import os

import pytest

from hfspeech.errors import OutputWriteError
from hfspeech.inference import outputs
from hfspeech.inference.classifier import Prediction


@pytest.mark.parametrize("code, remedy", [(errno.EROFS, "make it writable, or give another --output file"),
                                          (errno.EACCES, "make it writable, or give another --output file")])
def test_an_earlier_output_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch, code, remedy):
    """It was `[Errno 30] Read-only file system: 'p.jsonl'` (a bare errno: opened for cutting a torn last row
    before anything else, measured on a remounted read-only tmpfs); root ignores a chmod, so the disk's refusal is
    raised here as the kernel raised it."""
    path = str(tmp_path / "p.jsonl")
    with outputs.PredictionWriter(path) as writer:
        writer.write(Prediction("a.wav", ["yes", "no"], [0.75, 0.25], 1))

    def refusing_open(file, mode="r", *args, **kwargs):
        if "+" in mode or "a" in mode or "w" in mode:
            raise OSError(code, os.strerror(code), file)
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(outputs, "open", refusing_open, raising=False)
    with pytest.raises(OutputWriteError) as refused:
        outputs.read_earlier_output(path)
    assert str(refused.value) == f"{path}: cannot write ({os.strerror(code)}); {remedy}"
