"""`hfspeech train --help` (or a mistyped flag) waits only for what its flags need: torch and transformers, for
TrainingArguments, not the training stack behind them (datasets, evaluate, audiomentations, scipy: `training.run`),
which was imported before the flags were parsed; `hfspeech average --help` imports neither torch nor transformers,
`hfspeech export --help` not numpy.
Each command's help is checked unchanged by importing the rest after it: the same text as with the stack loaded.

One fresh process runs every command here (`run_groups_in_fresh_process`): the commands that must not import numpy
first, then train's, each group's modules read as they stand after it (so everything run before it counts too).
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
LIGHTEST = ("numpy", "torch", "transformers", *STACK)

SCRIPT = """
import contextlib, importlib, io, json, sys
from hfspeech.cli import main

def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    return [code, out.getvalue(), err.getvalue()]

seen = []
for commands, watched in {groups!r}:
    light = [run(argv) for argv in commands]
    seen.append(dict(light=light, loaded=sorted(name for name in watched if name in sys.modules)))
for name in {deferred!r}:
    importlib.import_module(name)
for found, (commands, _) in zip(seen, {groups!r}):
    found["full"] = run(commands[0])
print(json.dumps(seen))
"""


def run_groups_in_fresh_process(groups: list[tuple[list[list[str]], tuple[str, ...]]],
                                deferred: tuple[str, ...]) -> list[dict]:
    """For each (commands, watched) group in turn, in one fresh process: its commands run, then which `watched`
    modules are loaded by then; after all groups, the `deferred` modules (those the commands import only once
    their flags are read) imported and each group's first command run again."""
    script = SCRIPT.format(groups=[(commands, tuple(watched)) for commands, watched in groups], deferred=deferred)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_in_fresh_process(commands: list[list[str]], watched: tuple[str, ...], deferred: str) -> dict:
    """Each of `commands` run, the `watched` modules then loaded, and the first command again after importing
    the `deferred` modules (comma-separated)."""
    return run_groups_in_fresh_process([(commands, watched)], tuple(name.strip() for name in deferred.split(",")))[0]


def without_addresses(text: str) -> str:
    """Any object's repr in a help (`at 0x7f...`): transformers' --torch_empty_cache_steps printed one before its `%`
    was escaped."""
    return re.sub(r"0x[0-9a-f]+", "0x", text)


# (command, its --help, a mistyped flag, what the help imports only after its flags are read), in the order run
AVERAGE_EXPORT = {
    "average": (["average", "--help"], ["average", "a", "b", "--output_dri", "x"],
                ("hfspeech.training.averaging", "hfspeech.export.torchscript_export")),
    "export": (["export", "--help"], ["export", "run", "--output_dri", "x"], ("hfspeech.inference.backends",)),
}
TRAIN = (["train", "--help"], ["train", "--output_dri", "x"], ("hfspeech.training.run",))


@pytest.fixture(scope="module")
def seen() -> dict:
    groups = [([help_argv, typo], LIGHTEST) for help_argv, typo, _ in AVERAGE_EXPORT.values()]
    groups.append(([TRAIN[0], TRAIN[1]], STACK))
    deferred = tuple(name for _, _, names in [*AVERAGE_EXPORT.values(), TRAIN] for name in names)
    return dict(zip([*AVERAGE_EXPORT, "train"], run_groups_in_fresh_process(groups, deferred)))


def test_train_help_and_a_mistyped_flag_leave_the_training_stack_unimported(seen):
    seen = seen["train"]
    assert seen["loaded"] == []
    (help_code, help_text, _), (typo_code, _, typo_error) = seen["light"]
    assert help_code == 0 and "--output_dir" in help_text and "--max_length_seconds" in help_text
    assert typo_code == 2 and "--output_dri" in typo_error and "--output_dir" in typo_error
    assert without_addresses(help_text) == without_addresses(seen["full"][1])


@pytest.mark.parametrize("command", ["average", "export"])
def test_average_and_export_help_and_a_mistyped_flag_import_none_of_the_stack(seen, command):
    seen = seen[command]
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
