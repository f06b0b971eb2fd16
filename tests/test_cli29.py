"""Command-line leftovers: `average` holds its output folder, every command's help on a full stdout is one line,
and `train` / `distill` refuse a mistyped flag in the words of every other command, before anything else."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from conftest import run_cli_output
from test_averaging import save_cnn
from test_concurrency27 import HOLD_FOLDER


def test_an_average_into_a_folder_another_process_writes_is_refused_and_writes_nothing(tmp_path, capsys):
    """Two averages started together into one new folder both found it new and both wrote into it."""
    for seed in range(2):
        save_cnn(tmp_path / f"seed{seed}", seed)
    soup = tmp_path / "soup"
    soup.mkdir()  # made a moment ago by the other average, which holds it and has written nothing yet
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(soup)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, err = run_cli_output(["average", str(tmp_path / "seed0"), str(tmp_path / "seed1"),
                                         "--output_dir", str(soup)], capsys)
    finally:
        holder.stdin.close()
        holder.wait(timeout=20)
    assert (code, out, err) == (2, "", f"error: --output_dir {soup}: another command is writing to this folder now "
                                       "(an average, a training run); give another --output_dir\n")
    assert list(soup.iterdir()) == []  # nothing of this average mixed into the other's
    code, _, err = run_cli_output(["average", str(tmp_path / "seed0"), str(tmp_path / "seed1"),
                                   "--output_dir", str(soup)], capsys)
    assert code == 0, err  # released when the other process ends
    assert (soup / "config.json").is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device every write to fails on")
@pytest.mark.parametrize("command", ["average", "predict", "serve", "demo-data", "train", "distill", "evaluate",
                                     "cross-validate"])
def test_every_commands_help_on_a_full_stdout_is_the_one_line_of_the_top_level_help(command, capsys, monkeypatch):
    """argparse's print ignores a failed write: `hfspeech COMMAND --help > /dev/full` exited 0 without a word."""
    full = open("/dev/full", "w")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", full)
            code, _, err = run_cli_output([command, "--help"], capsys)
    finally:
        with contextlib.suppress(OSError):  # what the failed write left in its buffer
            full.close()
    assert (code, err) == (2, "error: stdout: cannot write (No space left on device); make room where stdout goes, "
                              "or send it elsewhere\n")
    code, out, err = run_cli_output([command, "--help"], capsys)  # a stdout with room: the help, as before
    assert code == 0 and out.startswith("usage: ") and err == ""


TRAINING_FLAGS_KEPT = ["--bf16", "--report_to", "none", "--push_to_hub", "--do_eval", "False",
                       "--no_remove_unused_columns", "--data-dir", "data", "--num_train", "1", "--output_dir", "out"]


@pytest.mark.parametrize("command", ["train", "distill", "cross-validate"])
def test_a_mistyped_training_flag_is_named_first_in_the_words_of_every_command(command, capsys, tmp_path,
                                                                               monkeypatch):
    """train said it in transformers' words ("... not used by the HfArgumentParser"), distill "needs --teacher"
    first. TrainingArguments' flags (on/off with and without a value, negated, dashed, abbreviated) stay valid."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli_output([command, *TRAINING_FLAGS_KEPT, "--num_train_epohcs", "1"], capsys)
    assert (code, out, err) == (2, "", "error: unknown flag(s) ['--num_train_epohcs'] (did you mean "
                                       f"['--num_train_epochs']?); `hfspeech {command} --help` lists them\n")
    assert list(tmp_path.iterdir()) == []


def test_distill_knows_its_own_flags_and_names_a_typo_of_them(capsys, tmp_path):
    code, _, err = run_cli_output(["distill", "--teacher", str(tmp_path / "none"), "--studnt_model_type", "cnn"],
                                  capsys)
    assert (code, err) == (2, "error: unknown flag(s) ['--studnt_model_type'] (did you mean ['--student_model_type']?)"
                              "; `hfspeech distill --help` lists them\n")
    code, _, err = run_cli_output(["distill", "--teacher", str(tmp_path / "none"), "--student_model_type", "cnn",
                                   "--distill_temperature", "2", *TRAINING_FLAGS_KEPT[6:]], capsys)
    assert (code, err) == (2, f"error: --teacher {tmp_path / 'none'}: model folder not found\n")  # flags accepted


@pytest.mark.parametrize("command", ["train", "distill", "cross-validate"])
def test_the_dashed_args_file_spelling_the_recipe_reads_is_not_refused_as_a_typo(command, capsys, tmp_path):
    """`expand_args_files` reads `--args-file` as `--args_file`; the flag check knew only the declared spelling."""
    (tmp_path / "flags.txt").write_text("--num_train_epochs 1\n")
    teacher = ["--teacher", str(tmp_path / "none")] if command == "distill" else []
    code, _, err = run_cli_output([command, *teacher, "--args-file", str(tmp_path / "flags.txt"),
                                   "--output_dir", str(tmp_path / "out")], capsys)
    assert code == 2 and "unknown flag" not in err and "args-file" not in err, err


@pytest.mark.parametrize("spelling", [["--student_model_type=lstm"], ["--student", "lstm"],
                                      ["--student-model-type", "lstm"], ["--student_model_type", "lstm"]])
def test_distill_reads_the_student_flag_in_every_spelling_a_flag_has(spelling, capsys, tmp_path):
    """Only the exact word was rewritten to --model_type: `=X`, an abbreviation or dashes were refused in
    transformers' words, or as a typo, after the flag check had let them through."""
    from hfspeech.training.distill import parse_distill_args

    teacher = tmp_path / "teacher"
    assert run_cli_output(["tiny-model", str(teacher), "--labels", "a", "b"], capsys)[0] == 0
    _, model_args, _, _ = parse_distill_args(["--teacher", str(teacher), *spelling, "--data_dir", str(tmp_path),
                                              "--output_dir", str(tmp_path / "out")])
    assert model_args.model_type == "lstm"


@pytest.mark.parametrize("suffix, text", [(".txt", "--teacher {teacher}\n--student_model_type lstm\n"),
                                          (".json", '{{"teacher": "{teacher}", "student_model_type": "lstm"}}')])
def test_distill_reads_its_own_flags_from_an_args_file(suffix, text, capsys, tmp_path):
    """They were looked for before the files were expanded: "needs --teacher", or --student_model_type refused."""
    from hfspeech.training.distill import parse_distill_args

    teacher = tmp_path / "teacher"
    assert run_cli_output(["tiny-model", str(teacher), "--labels", "a", "b"], capsys)[0] == 0
    flags = tmp_path / f"flags{suffix}"
    flags.write_text(text.format(teacher=teacher))
    distill_args, model_args, _, _ = parse_distill_args(["--args_file", str(flags), "--data_dir", str(tmp_path),
                                                         "--output_dir", str(tmp_path / "out")])
    assert (distill_args.teacher, model_args.model_type) == (str(teacher), "lstm")


@pytest.mark.parametrize("spelling", ["--args_fil", "--args", "--args-fi"])
def test_an_abbreviated_args_file_flag_reads_its_file(spelling, tmp_path):
    """`--args_fil FILE` passed the flag check as argparse's abbreviation, then was parsed as a flag of its own:
    "invalid training flags: too many values to unpack (expected 3)"."""
    from hfspeech.training.command_line import parse_args

    (tmp_path / "flags.txt").write_text("--num_train_epochs 7\n")
    _, _, training_args = parse_args([spelling, str(tmp_path / "flags.txt"), "--data_dir", str(tmp_path),
                                      "--output_dir", str(tmp_path / "out")])
    assert training_args.num_train_epochs == 7
