"""The recipe's mistyped-flag check lives where its parser is (`training.command_line.parse_args`,
`training.distill.parse_distill_args`), so every entry point names a typo in the words of the `hfspeech` commands,
and each command's help and mistakes carry its own name (session 30)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli_output
from hfspeech.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
TYPO_REFUSED = "unknown flag(s) ['--num_train_epohcs'] (did you mean ['--num_train_epochs']?); `"


def run_main(argv):
    from hfspeech.training.run import main

    return main(argv)


def cross_validation_main(argv):
    from hfspeech.training.cross_validation import main

    return main(argv)


@pytest.mark.parametrize("entry_point", [run_main, cross_validation_main])
def test_the_python_entry_points_name_a_mistyped_flag_as_the_commands_do(entry_point, tmp_path):
    """`training.run.main` and `training.cross_validation.main` parse without the cli: they said "invalid training
    flags: Some specified arguments are not used by the HfArgumentParser: [...]", after TrainingArguments' checks."""
    with pytest.raises(UsageError) as refused:
        entry_point(["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--num_train_epohcs", "1"])
    message = str(refused.value)
    assert message.startswith(TYPO_REFUSED) and message.endswith(" --help` lists them"), message
    assert list(tmp_path.iterdir()) == []


def test_distill_names_a_typo_before_it_asks_for_the_teacher_without_the_cli():
    """`parse_distill_args` said "hfspeech distill needs --teacher MODEL_FOLDER"; only the cli named the typo first."""
    with pytest.raises(UsageError) as refused:
        from hfspeech.training.distill import parse_distill_args

        parse_distill_args(["--num_train_epohcs", "1"])
    message = str(refused.value)
    assert message.startswith(TYPO_REFUSED) and message.endswith(" --help` lists them"), message


@pytest.mark.parametrize("command", ["train", "distill", "cross-validate"])
def test_a_recipe_commands_help_names_the_command(command, capsys, monkeypatch):
    """The recipe's parser had no prog: `hfspeech train --help` printed "usage: hfspeech [-h] ...". At 80 columns
    (a pipe's width; argparse reads COLUMNS, and a narrow terminal wrapped the usage line before its `[-h]`)."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli_output([command, "--help"], capsys)
    assert code == 0 and err == "" and out.startswith(f"usage: hfspeech {command} [-h] "), out[:80]


def test_the_recipe_script_names_a_mistyped_flag_in_one_line():
    """`python recipes/finetune.py` (what `accelerate launch` runs on each process) is `hfspeech train`."""
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "finetune.py"), "--num_train_epohcs", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == f"error: {TYPO_REFUSED}hfspeech train --help` lists them\n"
