"""A resumed run's records (review of session 43): `lr_schedule.json` and `run_inputs.json`.

Before: an `lr_schedule.json` whose "lr_scheduler_type" was null (or missing, or a number) was refused with the
suggestion `--lr_scheduler_type None`, a flag the parser refuses; `--warmup_steps 2` resumed with another
`--warmup_ratio` was refused though transformers then ignores the ratio (`get_warmup_steps`); and `--data_seed`,
which draws the batches, was not recorded, so a resume with another one changed the order of the rest without a word.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.test_resume43 import resumable_copy, tones  # noqa: F401 (tones: the module's fixture)
from tests.test_resume43 import train as tiny_cnn_run


def train(tones: Path, output_dir: Path, *flags: str) -> int:
    """test_resume43's tiny CNN run (4 steps an epoch, a checkpoint every 2 steps), 2 epochs unless flags say more."""
    return tiny_cnn_run(tones, output_dir, "--num_train_epochs", "2", *flags)


@pytest.fixture(scope="module")
def warmed_up(tones, tmp_path_factory) -> Path:
    """8 steps, the first ceil(8 * 0.25) = 2 of them warming up."""
    run = tmp_path_factory.mktemp("runs") / "warmed_up"
    assert train(tones, run, "--warmup_ratio", "0.25") == 0
    return run


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def learning_rates(run: Path) -> dict:
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["learning_rate"] for entry in history if "learning_rate" in entry}


@pytest.mark.parametrize("damage, said", [
    ({"lr_scheduler_type": None}, "its lr_scheduler_type is `null`, not a schedule's name"),
    ({"lr_scheduler_type": 3}, "its lr_scheduler_type is `3`, not a schedule's name"),
    ({"warmup_steps": None}, "its warmup_steps is `null`, not a whole number of steps"),
    ("lr_scheduler_type", "holds no lr_scheduler_type"),
])
def test_a_damaged_schedule_record_is_named_in_one_line(tones, warmed_up, tmp_path, capsys, damage, said):
    run = resumable_copy(warmed_up, tmp_path / "run")
    record_file = run / "checkpoint-6" / "lr_schedule.json"
    record = json.loads(record_file.read_text())
    record = {key: value for key, value in record.items() if key != damage} if isinstance(damage, str) else {
        **record, **damage}
    record_file.write_text(json.dumps(record))
    assert train(tones, run, "--warmup_ratio", "0.25") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"{record_file}: {said} (cut short or edited); restore it, or delete it" in errors[0]
    assert "None" not in errors[0] and not (run / "checkpoint-8").exists()  # was `--lr_scheduler_type None`


def test_the_warmup_is_compared_as_the_steps_it_takes(tones, warmed_up, tmp_path, capsys):
    run = resumable_copy(warmed_up, tmp_path / "run")
    assert train(tones, run, "--warmup_steps", "2", "--warmup_ratio", "0.5") == 0  # 2 steps, as 0.25 of 8: resumed
    assert learning_rates(run)[8] == pytest.approx(learning_rates(warmed_up)[8])
    as_steps = resumable_copy(warmed_up, tmp_path / "as_steps")  # the same curve, recorded as `--warmup_steps 2`
    record_file = as_steps / "checkpoint-6" / "lr_schedule.json"
    record_file.write_text(json.dumps({**json.loads(record_file.read_text()), "warmup_ratio": 0.0, "warmup_steps": 2}))
    assert train(tones, as_steps, "--warmup_steps", "2", "--warmup_ratio", "0.1") == 0  # the ratio is not used
    again = resumable_copy(warmed_up, tmp_path / "again")
    assert train(tones, again, "--warmup_ratio", "0.25", "--warmup_steps", "3") == 2  # 3 steps: another curve
    errors = error_lines(capsys)
    assert len(errors) == 1 and "cannot resume with another learning-rate schedule (--warmup_steps 0 -> 3)" in errors[0]
    assert "resume with `--warmup_steps 0`" in errors[0]


def test_another_data_seed_on_resume_is_refused_and_an_older_record_still_resumes(tones, warmed_up, tmp_path, capsys,
                                                                                   caplog):
    assert json.loads((warmed_up / "run_inputs.json").read_text())["data_seed"] is None
    run = resumable_copy(warmed_up, tmp_path / "run")
    assert train(tones, run, "--warmup_ratio", "0.25", "--data_seed", "7") == 2
    errors = error_lines(capsys)
    refusal = "checkpoint-6: cannot resume, its run had other data or start (data_seed not given -> 7)"
    assert len(errors) == 1 and refusal in errors[0] and "pass --overwrite_output_dir to start over" in errors[0]
    older = json.loads((run / "run_inputs.json").read_text())
    del older["data_seed"]  # as hfspeech wrote it before session 44
    (run / "run_inputs.json").write_text(json.dumps(older))
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        assert train(tones, run, "--warmup_ratio", "0.25", "--data_seed", "7") == 0
    assert "checkpoint-6: its run recorded no data_seed (an earlier hfspeech version's run)" in caplog.text
    assert json.loads((run / "run_inputs.json").read_text())["data_seed"] == 7
