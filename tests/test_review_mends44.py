"""Review R1's findings on this session's records, mended.

Before: `hfspeech average` of a run from before the files' rates were counted and a newer run of the same data
dropped the whole data report (the card said "Not recorded"); a run resumed once at a new length had its warmup
checked over the last length alone (`--warmup_steps 3` accepted where steps 1-6 warmed up over 2); and a
`--data_seed` equal to `--seed`, or given to a streamed run, where it changes no draw, was refused on resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from hfspeech.cli import main
from hfspeech.training.arguments import DataArguments
from hfspeech.training.checkpoints import CheckpointError
from hfspeech.training.resume_inputs import check_same_data
from hfspeech.training.run_inputs_file import write_record


def test_an_average_of_an_older_and_a_newer_run_keeps_their_data_report(trained_cnn, tmp_path: Path):
    newer, older = shutil.copytree(trained_cnn, tmp_path / "newer"), shutil.copytree(trained_cnn, tmp_path / "older")
    report = json.loads((older / "data_report.json").read_text())
    assert report.pop("source_rates")  # the tone folder's clips are written at 16, 8 and 44.1 kHz
    (older / "data_report.json").write_text(json.dumps(report))
    assert main(["average", str(newer), str(older), "--output_dir", str(tmp_path / "average")]) == 0
    averaged = json.loads((tmp_path / "average" / "data_report.json").read_text())
    assert averaged == report  # the rates, which one run lacks, are left out; the rest is kept


def schedule_checkpoint(folder: Path, lengths: list) -> str:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"max_steps": lengths[-1][1], "global_step": 6}))
    (folder / "lr_schedule.json").write_text(json.dumps({
        "lr_scheduler_type": "linear", "lr_scheduler_kwargs": {}, "warmup_ratio": 0.25, "warmup_steps": 0,
        "lengths": lengths}))
    return str(folder)


def test_the_warmup_is_compared_over_every_length_the_run_followed(tmp_path: Path):
    from hfspeech.training.lr_schedule import check_same_schedule

    args = SimpleNamespace(lr_scheduler_type="linear", lr_scheduler_kwargs={}, warmup_ratio=0.25, warmup_steps=3)
    check_same_schedule(schedule_checkpoint(tmp_path / "once", [[0, 12]]), args, "start over")  # ceil(12/4) = 3
    twice = schedule_checkpoint(tmp_path / "twice" / "checkpoint-6", [[0, 8], [6, 12]])  # steps 1-6 warmed up 2
    with pytest.raises(CheckpointError, match="warmup"):
        check_same_schedule(twice, args, "start over")
    check_same_schedule(twice, SimpleNamespace(**{**vars(args), "warmup_steps": 0}), "start over")


@pytest.mark.parametrize("data_seed, streaming", [(0, False), (3, True)])
def test_a_data_seed_that_draws_nothing_else_resumes_without_it(tmp_path: Path, data_seed, streaming):
    data = DataArguments(data_dir=str(tmp_path), streaming=streaming)
    run = tmp_path / "run"
    (run / "checkpoint-1").mkdir(parents=True)
    first = SimpleNamespace(seed=0, data_seed=data_seed, resume_from_checkpoint=None)
    write_record(str(run), check_same_data(None, SimpleNamespace(model_name_or_path=None), data, first))
    again = SimpleNamespace(seed=0, data_seed=None, resume_from_checkpoint=None)
    check_same_data(str(run / "checkpoint-1"), SimpleNamespace(model_name_or_path=None), data, again)
    other = SimpleNamespace(seed=0, data_seed=7, resume_from_checkpoint=None)
    if not streaming:  # a data seed that does draw otherwise is still refused
        with pytest.raises(CheckpointError, match="data_seed not given -> 7"):
            check_same_data(str(run / "checkpoint-1"), SimpleNamespace(model_name_or_path=None), data, other)


def test_another_form_of_the_warmup_is_refused_where_the_new_length_makes_it_differ(tmp_path: Path):
    """Review R3: `--warmup_steps 2` resumed as `--warmup_ratio 0.25` is the same warmup over the checkpoint's 8 steps
    (accepted as the flags are read), but 3 steps over the resumed run's 12: the rest followed a curve no flag named,
    and the run's own flags were refused at the next resume."""
    from hfspeech.training.lr_schedule import resumed_lengths

    checkpoint = tmp_path / "run" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"max_steps": 8, "global_step": 4}))
    (checkpoint / "lr_schedule.json").write_text(json.dumps({
        "lr_scheduler_type": "linear", "lr_scheduler_kwargs": {}, "warmup_ratio": 0.1, "warmup_steps": 2,
        "lengths": [[0, 8]]}))
    args = SimpleNamespace(lr_scheduler_type="linear", lr_scheduler_kwargs={}, warmup_ratio=0.25, warmup_steps=0)
    with pytest.raises(CheckpointError, match=r"another warmup over this run's 12 steps \(2 -> 3 warmup steps\)"):
        resumed_lengths(str(checkpoint), args, 12)
