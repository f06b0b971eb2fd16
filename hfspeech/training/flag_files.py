"""`--args_file FILE` (repeatable; flag text, JSON or YAML) and a .json/.yaml file as the first argument: the recipe's
flag files, read into flags before the command line's own (which win), each file's flags checked on their own so that
a mistake in one names the file. A module of its own, beside `training.command_line` (which parses what this
returns, then names a mistyped flag of the whole line), so that each stays a file one can read through.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Sequence

from transformers import HfArgumentParser

from hfspeech.errors import UsageError, did_you_mean

STRUCTURED_SUFFIXES = (".json", ".yaml", ".yml")  # flag files read as a mapping of flag names to values


class ArgsFileNotFoundError(UsageError, FileNotFoundError):
    """`--args_file` names a file that does not exist (transformers would skip it without a word)."""


ARGS_FILE_FLAGS = ("--args_file", "--args-file")  # what `expand_args_files` reads (the parser declares the first)


def expand_args_files(argv: Sequence[str], parser: HfArgumentParser) -> list[str]:
    """`--args_file FILE` (repeatable; `--args_file=FILE` too) and a .json/.yaml file as the first argument
    (transformers' `script.py args.json`) replaced by the flags they hold, in front of the command line's own
    flags, which therefore win, as in transformers; of two files the later one wins. Done here, not by
    transformers' pre-parser: it skips a missing file and reads JSON or YAML as words of flag text."""
    argv, files, rest = list(argv), [], []
    if argv and not argv[0].startswith("-") and argv[0].lower().endswith(STRUCTURED_SUFFIXES):
        files.append(argv.pop(0))
    tokens = iter(argv)
    for token in tokens:
        name, has_value, value = token.partition("=")
        spelled = name[2:].replace("-", "_") if name.startswith("--args") else ""  # abbreviated too: `--args_fil`
        if not (spelled and "args_file".startswith(spelled)):  # as argparse reads it; left, it was parsed as a flag
            rest.append(token)
        elif not has_value and ((value := next(tokens, None)) is None or value.startswith("--")):
            raise UsageError("--args_file: expected a file name")
        else:
            files.append(value)
    return [flag for path in files for flag in flags_in_file(path, parser)] + rest


def flags_in_file(path: str, parser: HfArgumentParser) -> list[str]:
    """The flags of one `--args_file`: its words (transformers' reading of a flag file), or for .json, .yaml
    and .yml a mapping of flag names to values."""
    if not os.path.isfile(path):
        raise ArgsFileNotFoundError(f"{path}: --args_file not found")
    try:
        text = flag_file_text(path, Path(path).read_bytes())
    except OSError as error:
        raise UsageError(f"{path}: --args_file cannot be read as text ({error})") from None
    if not path.lower().endswith(STRUCTURED_SUFFIXES):
        return checked_in(path, text.split(), parser)
    return checked_in(path, flags_of_mapping(read_mapping(path, text), path, parser), parser)


def flag_file_text(path: str, data: bytes) -> str:
    """The text of a flag file as Windows tools save it, read as manifests are (`data.manifests`): UTF-16 by its
    byte-order mark (PowerShell 5's `>`), else UTF-8 with or without one (Notepad's). Read as plain UTF-8, the mark
    was taken for part of the first flag (`['\\ufeff--model_type', 'cnn'] follow(s) no flag`), a JSON file with one
    was refused, and UTF-16 was "cannot be read as text" with no way out."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")  # the mark tells the byte order, and is dropped
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: --args_file is not UTF-8 text (byte {error.object[error.start]:#x} at offset "
                         f"{error.start}, e.g. Windows-1252): {SAVE_AS_UTF8}") from None
    if "\0" in text:  # UTF-16 without its mark: every other byte is 0
        raise UsageError(f"{path}: --args_file holds NUL bytes (UTF-16 without a byte-order mark?): {SAVE_AS_UTF8}")
    return text


SAVE_AS_UTF8 = ("save it as UTF-8 (Notepad: Save As, Encoding UTF-8; PowerShell: `Out-File -Encoding utf8` rather "
                "than `>`)")


def checked_in(path: str, flags: list[str], parser: HfArgumentParser) -> list[str]:
    """`flags` of the file `path`, parsed on their own first so that a mistake in them names the file."""
    try:
        _, unused = parser.parse_known_args(flags)
    except UsageError as error:
        raise UsageError(f"{path}: {error}") from None
    unknown = [word for word in unused if word.startswith("-")]
    if unknown:
        known = [option for action in parser._actions for option in action.option_strings]
        raise UsageError(f"{path}: unknown flag(s) {unknown}" + did_you_mean(unknown, known, cutoff=0.7))
    if unused:  # transformers splits a flag file at spaces: `--config_overrides {"n_mels": 40}` is two words
        raise UsageError(f"{path}: {unused} follow(s) no flag; a flag file is split at spaces, so write each "
                         "value without them (or use a .json/.yaml file)")
    return flags


def read_mapping(path: str, text: str) -> dict:
    import yaml

    kind = "JSON" if path.lower().endswith(".json") else "YAML"
    try:
        values = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(f"{path}: not valid {kind} ({' '.join(str(error).split())})") from None
    if values is None and kind == "YAML":  # an empty file, as an empty flag file: no flags
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"{path}: expected a {kind} mapping of flag names to values, like "
                         f"{{\"learning_rate\": 3e-5}}, got {type(values).__name__}")
    return values


def flags_of_mapping(values: dict, path: str, parser: HfArgumentParser) -> list[str]:
    """`{"learning_rate": 3e-5, "fp16": true, "config_overrides": {"n_mels": 40}}` -> `--learning_rate 3e-05
    --fp16 True --config_overrides {"n_mels": 40}`, parsed (and type-checked) like the command line's flags."""
    actions = {action.dest: action for action in parser._actions
               if action.option_strings and action.dest not in ("help", "args_file")}
    names = {key: str(key).lstrip("-").replace("-", "_") for key in values}
    unknown = [key for key, name in names.items() if name not in actions]
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {unknown}"
                         + did_you_mean([names[key] for key in unknown], actions, cutoff=0.7))
    flags = []
    for key, value in values.items():
        action = actions[names[key]]
        if value is None and action.default is not None:
            raise UsageError(f"{path}: {key}: null; leave the key out for the default ({action.default})")
        if isinstance(value, list) and action.nargs not in ("+", "*"):
            if len(value) != 1:
                raise UsageError(f"{path}: {key}: a list of {len(value)}; --{names[key]} takes one value")
            value = value[0]
        if value is not None:
            words = value if isinstance(value, list) else [value]
            flags += [f"--{names[key]}", *(flag_text(word) for word in words)]
    return flags


def flag_text(value) -> str:
    if isinstance(value, (dict, list)):  # --config_overrides, --lr_scheduler_kwargs ...: JSON text
        return json.dumps(value)
    return str(value)  # True/False as HfArgumentParser's string_to_bool reads them
