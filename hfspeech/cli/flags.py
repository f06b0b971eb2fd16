"""One flag style for every subcommand: underscores, as transformers' `HfArgumentParser` spells them.

`hfspeech train --data_dir` comes from `HfArgumentParser`; the other subcommands' parsers are `CliParser`s,
declared with the same underscore spelling (`--top_k`, `--window_seconds`). Each also accepts the dashed
spelling (`--top-k`), which earlier versions used for some flags and `HfArgumentParser` accepts too, so
no command line that worked stops working; the help shows the canonical spelling, the dashed one after it.
"""

from __future__ import annotations

import argparse
import copy
from typing import Optional

from hfspeech.data.progress_bars import progress_wanted  # noqa: F401  (predict, demo: one rule for every bar)
from hfspeech.parser_rules import AbbreviationsOfOneFlag, flag_action, home_expanded, refuse_unknown_flags

ALIAS_NOTE = "Flags are spelled with underscores, as in transformers (--top_k); the dashed spellings (--top-k) work too."


def dashed(option: str) -> str:
    """`--top_k` -> `--top-k`."""
    return "--" + option[2:].replace("_", "-")


class CanonicalHelpFormatter(argparse.HelpFormatter):
    """Lists each flag under its canonical spelling, its dashed aliases after it in parentheses:
    `--min_windows MIN_WINDOWS (or --min-windows)`. The usage line shows the canonical spelling only."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        aliases = [option for option in action.option_strings if option in getattr(action, "dashed_aliases", ())]
        if not aliases:
            return super()._format_action_invocation(action)
        shown = copy.copy(action)
        shown.option_strings = [option for option in action.option_strings if option not in aliases]
        return f"{super()._format_action_invocation(shown)} (or {', '.join(aliases)})"


def number_in(kind: type, low: float, high: Optional[float] = None):
    """An argparse `type`: a number of `kind` from `low` to `high` inclusive, or above `low` when there is no
    `high` (`--top_k 0`, `--window_seconds -1`, `--port 99999` are usage errors, not tracebacks or no-ops)."""
    def parse(text: str):
        value = kind(text)
        if not (low < value if high is None else low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {'above ' + str(low) if high is None else f'{low} to {high}'}"
                                             f", got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the kind in "invalid int value: 'x'"
    return parse


def positive(kind: type = float):
    """A number of `kind` above zero: sizes, counts, rates."""
    return number_in(kind, 0)


probability = number_in(float, 0, 1)  # a score threshold: softmax or sigmoid outputs; 2 would never fire


def device_name(text: str) -> str:
    """A `--device`: cpu, cuda, cuda:N or mps, checked in form here; whether this machine has it, when the model
    loads (`inference.loading.backend_for_device`), so that `--help` and an ONNX run do not import torch."""
    from hfspeech.inference.backends import device_form_problem

    if problem := device_form_problem(text):
        raise argparse.ArgumentTypeError(problem)  # argparse names the flag: `argument --device: must be ...`
    return text


DEVICE_HELP = ("where a PyTorch model runs: cpu, cuda, cuda:N or mps (default: a GPU when there is one, else the "
               "CPU); ONNX and TorchScript exports run on the CPU only and refuse another device")


class OnOffFlag(argparse.Action):
    """`--name` sets True, `--no_name` (or `--no-name`) False; not given, the default (None: decide later).
    `argparse.BooleanOptionalAction` would spell the negative `--no-name` only."""

    def __init__(self, option_strings, dest, default=None, help=None):
        canonical = [option for option in option_strings if "-" not in option[2:]]
        negatives = [f"--no_{option[2:]}" for option in canonical]
        negatives += [dashed(option) for option in negatives]
        self.negatives = set(negatives)
        super().__init__(option_strings + negatives, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, option_string not in self.negatives)

    def format_usage(self) -> str:
        return " | ".join(option for option in self.option_strings if "-" not in option[2:])


# transformers' `string_to_bool` words, as train and evaluate read them (`f` and `n` turned remote code ON here)
SWITCH_WORDS = {"true": True, "yes": True, "t": True, "y": True, "1": True,
                "false": False, "no": False, "f": False, "n": False, "0": False}


def switch_values_read(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """A switch given a value, as train's `HfArgumentParser` takes it (`--trust_remote_code False`), read so:
    `--flag=false` / `--flag false` off, `--flag=true` / `--flag true` on. The next word is the switch's only when it
    is a true/false word (`SWITCH_WORDS`, any case); without this, `predict RUN a.wav --trust_remote_code False`
    turned remote code ON and read `False` as an audio file. Where the command takes files and the word is also one
    here (a Speech Commands root's `no/`), it is refused as ambiguous. Words after `--` are files."""
    import os

    takes_files = any(not action.option_strings and action.nargs in ("*", "+") for action in parser._actions)
    end = words.index("--") if "--" in words else len(words)
    read, index = [], 0
    while index < end:
        word = words[index]
        name, equals, value = word.partition("=")
        action = _switch(parser, name) if word.startswith("--") else None
        following = words[index + 1] if index + 1 < end else ""
        if action is not None and not equals and following.lower() in SWITCH_WORDS:
            if takes_files and os.path.exists(following):
                parser.error(f"argument {name}: {following!r} is a true/false word and a file here: write "
                             f"{name}={following} for the switch, or ./{following} for the file")
            value, equals, index = following, "=", index + 1
        if action is not None and equals:
            if value.lower() not in SWITCH_WORDS:
                parser.error(f"argument {name}: a switch takes true or false, got {value!r}")
            on = SWITCH_WORDS[value.lower()]
            negative = [option for option in sorted(getattr(action, "negatives", ())) if "-" not in option[2:]]
            read += [name] if on else negative[:1]  # a store_true switch off: its default, not given
        else:
            read.append(word)
        index += 1
    return read + words[end:]


def _switch(parser: argparse.ArgumentParser, name: str) -> Optional[argparse.Action]:
    """The on-only switch (`store_true`, or `OnOffFlag`'s positive spelling) that `name` or its abbreviation names."""
    action = flag_action(parser, name)
    positive = isinstance(action, argparse._StoreTrueAction) or (
        isinstance(action, OnOffFlag) and not any(negative.startswith(name) for negative in action.negatives))
    return action if positive else None


# These commands' flags for what the training recipe spells otherwise (as `parser_rules.FLAG_EQUIVALENTS`: the flag that
# must be there, what to give): predict's `--max_length_seconds` was told "--hop_seconds", serve's "--max_seconds"
# (`--max_seconds`: serve's alone), push's `--token` nothing.
SERVE_WINDOW = "serve cuts the window the model trained on; --max_seconds is the longest audio it accepts"
CLI_FLAG_EQUIVALENTS = {
    "--max_length_seconds": [("--window_seconds", "give --window_seconds (default: the length the model trained on)"),
                             ("--max_seconds", SERVE_WINDOW)],
    **dict.fromkeys(["--window_seconds", "--hop_seconds"], [("--max_seconds", SERVE_WINDOW)]),
    "--hub_model_id": [("--repo_id", "give --repo_id")],
    **dict.fromkeys(["--token", "--hub_token"], [("--repo_id", "the token comes from HF_TOKEN or `hf auth login`, "
                                                               "never a flag")]),
    "--data_dir": [("--eval_dir", "give --eval_dir, the held-out audio folder to measure on")],
    "--calib_dir": [("--calibration_dir", "give --calibration_dir")],  # (a shortened word: no near-flag rule for it)
}


def with_default_said(kwargs: dict, flag: bool = True) -> dict:
    """An argument's `kwargs` with "(default: X)" at the end of its help, where the help does not name its default:
    `predict --help` showed `--top_k TOP_K` and `serve --help` `--port PORT` without a word of what they are when
    not given, and `--manifest`, `--json` nothing at all. A default of None or False is said as train's and
    evaluate's parser says it (`(default: None)`, `(default: False)`), one reading for every command. Not for a
    positional (`flag` False), a required flag, or a suppressed default or help."""
    default, text = kwargs.get("default"), kwargs.get("help")
    if "default" not in kwargs and kwargs.get("action") in ("store_true", "store_false"):
        default = kwargs["action"] == "store_false"  # what argparse gives such a switch
    if not flag or kwargs.get("required") or default is argparse.SUPPRESS or text == argparse.SUPPRESS \
            or "default" in (text or "").lower():
        return kwargs
    shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
    return {**kwargs, "help": f"{text + ' ' if text else ''}(default: {shown.replace('%', '%%')})"}


class MovedFlags(list):
    """A command line in which `cli.common.flag_as_positional` read `FLAG VALUE` as a positional argument: `moved`
    holds `(flag, value, first)` for each, so that the parser can say which positional was given twice."""

    def __init__(self, words, moved=()):
        super().__init__(words)
        self.moved = tuple(moved)


def parsed_whole(parser: argparse.ArgumentParser, words, namespace: argparse.Namespace, extras: list[str],
                 twice=lambda other: False) -> argparse.Namespace:
    """`namespace`, after argparse's own refusal of `extras` (the words left over), which says why where a flag was
    read as a positional (`MovedFlags`): `stage RUN DEST --output_dir X` was "unrecognized arguments: X", `stream A
    --model B` "unrecognized arguments: A". The positional is named given twice, with both values; also where
    nothing is left over but `twice(other)` says the other word is one too (predict's MODEL, then files), unless it
    comes after `--`."""
    positionals = [action for action in parser._actions if not action.option_strings]
    for flag, value, first in getattr(words, "moved", ()):
        given = [word for action in positionals for word in _as_words(getattr(namespace, action.dest, None))]
        given += [word for word in extras if not word.startswith("-")]
        other = given[1 if first else -2] if len(given) > 1 else None
        files = words[words.index("--") + 1:] if "--" in words else []  # after `--`, every word is a file
        if other is not None and (extras or (twice(other) and other not in files)):
            slot = [action for action in positionals if action.nargs in (None, "?")][0 if first else -1]
            parser.error(f"{slot.metavar or slot.dest.upper()} given twice: {other} and {flag} {value}; give it once")
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")  # as argparse's parse_args says it
    return namespace


def _as_words(value) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


class CliParser(AbbreviationsOfOneFlag, argparse.ArgumentParser):
    """An `ArgumentParser` whose long flags, declared with underscores, also parse in their dashed spelling,
    and whose mistakes are one line, `error: ...` and exit code 2, as every other mistake of `hfspeech`:
    argparse printed the whole usage first, and a mistyped flag got no hint."""

    flag_equivalents = CLI_FLAG_EQUIVALENTS  # `parser_rules.refuse_unknown_flags`' hints

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", CanonicalHelpFormatter)
        kwargs.setdefault("epilog", ALIAS_NOTE)
        super().__init__(*args, **kwargs)

    def add_argument(self, *names: str, **kwargs) -> argparse.Action:
        declared = [name for name in names if name.startswith("--")]
        if any("-" in name[2:] for name in declared):
            raise ValueError(f"declare flags with underscores, not {declared}: the dashed spelling is added")
        aliases = [dashed(name) for name in declared if "_" in name]
        action = super().add_argument(*names, *aliases, **with_default_said(kwargs, flag=bool(declared)))
        # The help hides every dashed spelling: these aliases, and the --no-name that OnOffFlag adds.
        action.dashed_aliases = {option for option in action.option_strings if "-" in option[2:]}
        return action

    def parse_args(self, args=None, namespace=None):
        """A mistyped flag is named (with the nearest one) before argparse would complain of a flag it
        then reports missing: `--output_dri x` was "the following arguments are required: --output_dir"."""
        import sys

        words = sys.argv[1:] if args is None else args
        args = switch_values_read(self, home_expanded(self, list(words)))
        refuse_unknown_flags(self, args)
        return parsed_whole(self, words, *self.parse_known_args(args, namespace))

    def error(self, message: str):
        """One line on stderr and exit code 2 (argparse's code for a usage mistake), without the usage."""
        hint = f"; `{self.prog} --help` lists them" if message.startswith("the following") else ""
        self.exit(2, f"error: {' '.join(message.split())}{hint}\n")
