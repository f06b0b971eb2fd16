"""Review R3 of the resumed schedule checks (session 43): a resume that trains no further than the checkpoint's
schedule was warned of a rate "at step 8" no step took and recorded "linear, 8 steps; resumed at step 6 as 6";
the schedule refusal came after the data was decoded, on the process that met it alone."""

from __future__ import annotations

import json
import logging

from test_resume43 import resumable_copy, train, tones, two_epochs  # noqa: F401 (fixtures)


def test_a_resume_that_ends_where_it_is_says_nothing_of_a_schedule(tones, two_epochs, tmp_path, caplog):  # noqa: F811
    run = resumable_copy(two_epochs, tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        assert train(tones, run, "--max_steps", "6") == 0
    assert "resumed with" not in caplog.text
    assert json.loads((run / "training_hyperparameters.json").read_text())["lr_scheduler_type"] == "linear"


def test_another_schedule_is_refused_before_the_data_is_read(tones, two_epochs, tmp_path, capsys):  # noqa: F811
    run = resumable_copy(two_epochs, tmp_path / "run")
    (tones / "zz_broken.wav").write_bytes(b"RIFF0000WAVE")  # decoding it would fail first
    try:
        assert train(tones, run, "--num_train_epochs", "2", "--lr_scheduler_type", "cosine") == 2
    finally:
        (tones / "zz_broken.wav").unlink()
    assert "cannot resume with another learning-rate schedule" in capsys.readouterr().err


def test_a_missing_package_raised_while_handling_a_refused_path_is_still_named_first():
    """The catch-all's order since before `machine_refusals` (review R3: the disk and access reasons came first)."""
    from hfspeech.cli.system_errors import machine_refusal

    try:
        try:
            raise PermissionError(13, "Permission denied", "/root/x")
        except PermissionError:
            raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
    except ModuleNotFoundError as error:
        said = str(machine_refusal(error, "export"))
    assert "onnxruntime" in said and "export" in said and "Permission denied" not in said, said
