"""`hfspeech train --help` (or a mistyped flag) waits only for what its flags need: torch and transformers, for
TrainingArguments, not the training stack behind them (datasets, evaluate, audiomentations, scipy: `training.run`),
which was imported before the flags were parsed; `hfspeech average --help` imports neither torch nor transformers,
`hfspeech export --help` not numpy.
Each command's help is checked unchanged by importing the rest after it: the same text as with the stack loaded.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

# what `hfspeech.training.run` and `training.averaging` bring, and the modules themselves
STACK = ("datasets", "evaluate", "audiomentations", "scipy", "sklearn", "pandas", "librosa",
         "hfspeech.training.run", "hfspeech.export.torchscript_export")

SCRIPT = """
import contextlib, io, json, sys
from hfspeech.cli import main

def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    return [code, out.getvalue(), err.getvalue()]

light = [run(argv) for argv in {commands!r}]
loaded = sorted(name for name in {watched!r} if name in sys.modules)
import {deferred}
print(json.dumps(dict(light=light, loaded=loaded, full=run({commands!r}[0]))))
"""


def run_in_fresh_process(commands: list[list[str]], watched: tuple[str, ...], deferred: str) -> dict:
    """Each of `commands` run, the `watched` modules then loaded, and the first command again after importing
    the `deferred` modules (those the command imports only once its flags are read)."""
    script = SCRIPT.format(commands=commands, watched=watched, deferred=deferred)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def without_addresses(text: str) -> str:
    """Any object's repr in a help (`at 0x7f...`): transformers' --torch_empty_cache_steps printed one before its `%`
    was escaped."""
    return re.sub(r"0x[0-9a-f]+", "0x", text)


def test_train_help_and_a_mistyped_flag_leave_the_training_stack_unimported():
    seen = run_in_fresh_process([["train", "--help"], ["train", "--output_dri", "x"]], STACK,
                                "hfspeech.training.run")
    assert seen["loaded"] == []
    (help_code, help_text, _), (typo_code, _, typo_error) = seen["light"]
    assert help_code == 0 and "--output_dir" in help_text and "--max_length_seconds" in help_text
    assert typo_code == 2 and "--output_dri" in typo_error and "--output_dir" in typo_error
    assert without_addresses(help_text) == without_addresses(seen["full"][1])


@pytest.mark.parametrize("command, typo, deferred", [
    (["average"], ["a", "b", "--output_dri", "x"], "hfspeech.training.averaging, hfspeech.export.torchscript_export"),
    (["export"], ["run", "--output_dri", "x"], "hfspeech.inference.backends")])
def test_average_and_export_help_and_a_mistyped_flag_import_none_of_the_stack(command, typo, deferred):
    seen = run_in_fresh_process([[*command, "--help"], [*command, *typo]], ("numpy", "torch", "transformers", *STACK),
                                deferred)
    assert seen["loaded"] == []
    (help_code, help_text, _), (typo_code, _, typo_error) = seen["light"]
    assert help_code == 0 and "--output_dir" in help_text
    assert typo_code == 2 and "--output_dri" in typo_error
    assert help_text == seen["full"][1]


def test_a_percent_sign_in_a_flags_help_is_printed_as_written():
    """transformers' help of --torch_empty_cache_steps says "about [10% slower performance]": argparse read "% s"
    as a format and printed the whole argparse action's dict in `hfspeech train --help`."""
    from hfspeech.training.command_line import recipe_parser

    text = recipe_parser(prog="hfspeech train").format_help()
    assert "10% slower" in text and "option_strings" not in text
    assert "(default: " in text and "%(default)s" not in text  # argparse's own formats still filled


def test_a_help_that_escapes_its_percent_sign_itself_still_prints_it_once(monkeypatch):
    """`%%` (argparse's own escape, as `cli.flags` writes it) was made `%%%`: `--help` raised a TypeError (R2)."""
    from hfspeech.training import command_line

    @dataclasses.dataclass
    class Shares:
        keep: float = dataclasses.field(default=0.5, metadata={"help": "the share kept: 50%% of clips, 10% slower"})
        # `%(default).0s`, the project's way to print no default (evaluation.arguments.OWN_DEFAULT; R3)
        drop: float = dataclasses.field(default=0.1, metadata={"help": "the share dropped.%(default).0s"})

    text = " ".join(command_line.recipe_parser(Shares, prog="hfspeech train").format_help().split())
    assert "50% of clips, 10% slower" in text and "the share dropped." in text and "%(default)" not in text
