"""Resuming a checkpoint of an earlier version's run, which recorded no run_inputs.json (or no trim in it), is not
checked against the data and flags: said in one warning, not silent (an upgrade audit resumed one untrimmed:
test accuracy 0.833 -> 0.625)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from hfspeech.training.arguments import DataArguments, ModelArguments
from hfspeech.training.resume_inputs import DATA_RECORD_FILE, check_same_data, data_record


def resume(tmp_path, caplog, record=None):
    data_args, model_args = DataArguments(data_dir=str(tmp_path / "data")), ModelArguments()
    checkpoint = tmp_path / "run" / "checkpoint-8"
    checkpoint.mkdir(parents=True)
    if record is not None:
        (tmp_path / "run" / DATA_RECORD_FILE).write_text(json.dumps(record))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        check_same_data(str(checkpoint), model_args, data_args, SimpleNamespace(seed=42, resume_from_checkpoint=None))
    return caplog.text


def test_a_run_without_its_record_is_resumed_with_a_warning(tmp_path, caplog):
    assert "its run recorded no run_inputs.json" in resume(tmp_path, caplog)


def test_a_record_without_the_trim_is_resumed_with_a_warning_and_a_whole_one_without(tmp_path, caplog):
    def whole(folder):
        return data_record(None, DataArguments(data_dir=str(folder / "data")), 42)

    older = {key: value for key, value in whole(tmp_path / "a").items() if key != "trim_top_db"}
    assert "its run recorded no trim_top_db" in resume(tmp_path / "a", caplog, older)
    assert "recorded no" not in resume(tmp_path / "b", caplog, whole(tmp_path / "b"))
