"""Error lines do not repeat secrets: a token given to a misspelled flag was echoed by transformers' parser."""

import subprocess
import sys

import pytest

from hfspeech.cli import main
from hfspeech.hidden_words import hide_secrets

TOKEN = "hf_" + "a1B2c3D4e5" * 3 + "f6G7"  # shaped like a Hugging Face user token


@pytest.mark.parametrize("flags", [["--hub_tokn", TOKEN], [f"--hub_tokn={TOKEN}"], ["--push_tokn", "s3cret-value"]])
def test_a_misspelled_token_flag_names_the_flag_but_not_its_value(flags, tmp_path, capsys):
    code = main(["train", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), *flags])
    error = capsys.readouterr().err
    assert code == 2 and ("--hub_token" in error or "--push_to_hub" in error)  # the flag is still named
    assert TOKEN not in error and "s3cret-value" not in error  # named as a mistyped flag, its value not echoed


def test_the_command_line_itself_hides_the_value(tmp_path):
    """The real command: the words come from sys.argv."""
    run = subprocess.run([sys.executable, "-m", "hfspeech.cli", "train", "--data_dir", str(tmp_path),
                          "--hub-tokne", "n0t-a-hub-token"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--hub-tokne" in run.stderr
    assert "n0t-a-hub-token" not in run.stderr


def test_a_token_anywhere_is_hidden_and_other_words_stand():
    line = f"--data_dir clips: not found; {TOKEN} --top_k 3"
    assert hide_secrets(line, ["--data_dir", "clips", "--top_k", "3"]) == "--data_dir clips: not found; <hidden> --top_k 3"
    assert hide_secrets("--api_kye 1 refused", ["--api_kye", "1"]) == "--api_kye 1 refused"  # too short to hide


@pytest.mark.parametrize("command", [["train"], ["evaluate", "--model", "runs/none"]])
def test_an_abbreviation_of_both_spellings_of_one_flag_is_that_flag(command, tmp_path, capsys, monkeypatch):
    """`--output` fits `--output_dir` and `--output-dir`, one flag: argparse called it ambiguous in the recipe's
    parser (the commands' own parser already read it as the flag)."""
    monkeypatch.chdir(tmp_path)
    code = main([*command, "--data_dir", "no-audio", "--output", "out"])
    error = capsys.readouterr().err
    assert code == 2 and "ambiguous" not in error and ("no-audio" in error or "runs/none" in error), error
