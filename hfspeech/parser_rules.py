"""What every hfspeech parser does alike with the words it is given: a mistyped flag refused in one line with the
nearest flag it may have meant (or what to give instead of a flag no command takes), an abbreviation of one flag's
several spellings taken as that flag, `--flag=~/x` expanded as the shell expands `--flag ~/x`, and `--help` on a
full stdout said as one line.

The CLI's parsers (`cli.flags`, `cli.common`) and the recipe's (`training.command_line`) share them, so a mistake
reads the same whichever command meets it. Bottom layer: imports only `errors`.
"""

from __future__ import annotations

import os
import sys

from hfspeech.errors import stdout_write_errors


def unknown_flags(argv, options) -> list[str]:
    """The `--flags` of `argv` that are neither one of `options` nor the start of one (argparse reads `--top`
    as `--top_k`), up to a `--` that ends the flags."""
    words = [*argv, "--"]
    names = [word.split("=", 1)[0] for word in words[:words.index("--")]]
    return [name for name in names if name.startswith("--") and len(name) > 2
            and not any(option.startswith(name) for option in options)]


# Flags no command takes, each with its alternatives: a flag of `options` that must be there for one to apply (None:
# any command) and what to give instead, where the nearest name misled (`--cache_dir` was told "--data_dir") or there
# was none. A parser adds its command's own in `flag_equivalents` (`training.command_line`, `cli.flags`).
FLAG_EQUIVALENTS = {
    "--cache_dir": [(None, "hfspeech has none: models load through the Hugging Face cache (set HF_HUB_CACHE or "
                           "HF_HOME), decoded audio goes to HF_DATASETS_CACHE")],
    "--teacher": [(None, "a teacher is distillation's: `hfspeech distill --teacher RUN`")],
}


def nearest_flags(unknown: list[str], options, equivalents=None) -> str:
    """` (did you mean ['--top_k']?)` for `['--top_j']`: the canonical spelling of the nearest of `options`
    (`near_flag`); for a flag of `equivalents` (default `FLAG_EQUIVALENTS`) with an alternative that applies, what to
    give instead."""
    canonical = [option for option in options if option.startswith("--") and "-" not in option[2:]]
    told = {flag: text for flag in unknown  # --eval-file too; the first that applies, last in this dict
            for needed, text in (equivalents or FLAG_EQUIVALENTS).get("--" + flag[2:].replace("-", "_"), [])[::-1]
            if needed is None or needed in canonical}
    said = f" ({'; '.join(f'{flag}: {text}' for flag, text in told.items())})" if told else ""
    near = [match for flag in unknown if flag not in told for match in near_flag(flag, canonical)]
    return said + (f" (did you mean {near}?)" if near else "")


def near_flag(flag: str, canonical) -> list[str]:
    """The nearest flag of `canonical` to `flag`, when it is near enough to be meant: a ratio of 0.8, or 0.6 and a
    whole `_`-separated word in common (not a generic one, as `dir`), or such a word with two letters swapped
    (`--outptu`), or its start unjoined (`--modelname`). difflib's 0.6 alone told `--cache_dir` "--data_dir",
    `--sampling_rate` "--aggregate" (the audit kept its 21 right hints and dropped 15 wrong ones)."""
    import difflib
    generic = {"dir", "file", "name", "path", "size", "type", "id"}  # `--calibration_dir` did not mean `--logging_dir`
    words = set(flag[2:].replace("-", "_").split("_")) - generic
    for match in difflib.get_close_matches(flag, canonical, n=3, cutoff=0.6):
        theirs = set(match[2:].split("_")) - generic
        swapped = any(sorted(a) == sorted(b) and sum(map(str.__ne__, a, b)) == 2 for a in words for b in theirs)
        if difflib.SequenceMatcher(None, match, flag).ratio() >= 0.8 or words & theirs or swapped \
                or match[2:].replace("_", "").startswith(flag[2:].replace("-", "").replace("_", "")):
            return [match]
    return []


class HelpWritesChecked:
    """argparse mixin: `COMMAND --help` on a full stdout (`> /dev/full`) is the one line `hfspeech --help` gets there
    (`stdout_write_errors`, exit code 2). argparse's print ignores an OSError, so the help was lost and the command
    exited 0 without a word. Every hfspeech parser has it, through `AbbreviationsOfOneFlag`: one place."""

    def print_help(self, file=None) -> None:
        if file is not None and file is not sys.stdout:  # stderr (a usage mistake): argparse's own, as before
            return super().print_help(file)
        with stdout_write_errors():
            sys.stdout.write(self.format_help())
            sys.stdout.flush()  # a buffered stdout fails here, not at exit after `parser.exit()` (SystemExit 0)


class AbbreviationsOfOneFlag(HelpWritesChecked):
    """argparse mixin: an abbreviation that fits several spellings of one flag (`--output` of `--output_dir` and
    `--output-dir`, `--top` of `--top_k` and `--top-k`) means that flag; argparse called it ambiguous. The base of
    every hfspeech parser (`CliParser`, `RecipeArgumentParser`), so it brings `HelpWritesChecked` to them all."""

    def _get_option_tuples(self, option_string: str):
        tuples = {}
        for option_tuple in super()._get_option_tuples(option_string):
            tuples.setdefault(id(option_tuple[0]), option_tuple)  # [0]: the action, whatever the Python version's tuple
        return list(tuples.values())


# Flags whose value is a path (by their dest), where `--flag=~/x` means the home folder (`home_expanded`)
PATH_FLAGS = frozenset({
    "output", "output_dir", "timeline", "manifest", "model", "eval_dir", "calibration_dir", "data_dir", "cache_dir",
    "train_file", "validation_file", "test_file", "noise_dir", "teacher", "args_file", "logging_dir",
    "model_name_or_path", "resume_from_checkpoint", "source", "noise_files"})  # source: --from_ctranslate2


def home_expanded(parser, words: list[str]) -> list[str]:
    """`--flag=~/x` with `~` expanded as the shell expands `--flag ~/x`, for a path flag of `parser` (`PATH_FLAGS`):
    the shell leaves a `~` after `=` alone, and `--output=~/p.csv` wrote a folder literally named `~` in the current
    one. TrainingArguments expands its `output_dir` so; this, hfspeech's path flags and no other (`--api_key=~x`,
    `--label_separator=~` are values, not paths). Words after `--` are files, kept as written."""
    end = words.index("--") if "--" in words else len(words)
    expanded = list(words)
    for index, word in enumerate(words[:end]):
        name, equals, value = word.partition("=")
        action = flag_action(parser, name) if word.startswith("--") and equals and value.startswith("~") else None
        if action is not None and action.nargs != 0 and action.dest in PATH_FLAGS:
            expanded[index] = f"{name}={os.path.expanduser(value)}"
    return expanded


def flag_action(parser, name: str):
    """The action of `parser` that `name` names, as a flag or the abbreviation of one argparse accepts; else None."""
    actions = {action for option, action in parser._option_string_actions.items() if option.startswith(name)}
    return parser._option_string_actions.get(name) or (actions.pop() if len(actions) == 1 else None)


def refuse_unknown_flags(parser, args, options=None, named_from=None) -> None:
    """The one refusal of a mistyped flag, before a parser would call a flag it then reports missing:
    `unknown flag(s) ['--top_j'] (did you mean ['--top_k']?); `hfspeech predict --help` lists them`, through
    `parser.error` (`CliParser`: exit code 2; the recipe's parser, for which it is here: `UsageError`). `options`: the
    flags known (default: the parser's own); `named_from`: the flags a hint may name (default: `options`)."""
    options = parser._option_string_actions if options is None else options
    if unknown := unknown_flags(args, options):
        equivalents = {**FLAG_EQUIVALENTS, **getattr(parser, "flag_equivalents", {})}
        hint = nearest_flags(unknown, options if named_from is None else named_from, equivalents)
        parser.error(f"unknown flag(s) {unknown}{hint}; `{parser.prog} --help` lists them")
