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


def test_evaluate_on_a_full_disk_names_its_folder_and_a_rerun_completes(tmp_path, monkeypatch, capsys):
    """It was the CLI's pathless catch-all, "cannot write (No space left on device); a disk it writes to is full or
    read-only" (checked by hand on a 4-KB tmpfs: a 0-byte classification report was left); the write fails here as
    the kernel failed it there."""
    from hfspeech.evaluation import report
    from tests.conftest import TONE_CLASSES, run_cli_output, save_random_baseline, write_tone_folder

    data = write_tone_folder(tmp_path / "tones", clips_per_class=2)
    model = save_random_baseline(tmp_path / "cnn", "cnn", list(TONE_CLASSES), 0.5, conv_channels=[4, 8], n_mels=16)
    out, written = tmp_path / "evaluation", report.write_confusion_matrix_json

    def full_disk(path, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(report, "write_confusion_matrix_json", full_disk)
    command = ["evaluate", str(model), "--data_dir", str(data), "--output_dir", str(out)]
    code, _, err = run_cli_output(command, capsys)
    assert code != 0 and err.strip().splitlines()[-1] == (
        f"error: {out}: cannot write (No space left on device); the reports are incomplete; make room and run the "
        "same command again")
    monkeypatch.setattr(report, "write_confusion_matrix_json", written)  # room made
    assert run_cli_output(command, capsys)[0] == 0 and (out / "train_metrics.json").is_file()
