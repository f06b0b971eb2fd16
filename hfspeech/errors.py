"""The one base class of the mistakes a user can make, and can fix from the message alone.

Every error hfspeech raises for bad input -- a data set that cannot be used (`DataError`, and its `FolderLayoutError`
and `ManifestError`), an audio file that cannot be decoded (`AudioFileError`), a path that is not a model
(`NotAModelError`), a model folder that cannot be exported (`ExportError`), a run that cannot be staged (`StageError`),
flags that do not fit together (`UsageError`), an output a full or read-only disk refuses (`OutputWriteError`), a
request the server refuses (`ApiError`, answered rather than printed) -- derives from `HfspeechError`
(tests/test_cli_conventions.py checks every `class ...Error`). Its message starts with the file (or flag) at fault and
says what is wrong. The `hfspeech` command prints it as one line, `error: <message>`, and exits with code 2; `--debug`
(or `HFSPEECH_DEBUG=1`) shows the traceback instead. Anything else that escapes is a bug and keeps its traceback.
Library errors a user mistake causes (huggingface_hub's invalid repo id for a missing folder, safetensors' header
error for a truncated weights file ...) are translated into these where they arise, so the message names the file.
The bottom layer: it imports no other part of hfspeech (but `file_owners` and `written_elsewhere`, bottom too,
when a write failed), and everything may import it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from typing import Optional


class HfspeechError(Exception):
    """A user mistake: the message names the file or flag and the problem, and is shown as one line."""


class UsageError(HfspeechError, ValueError):
    """Arguments or flags that cannot be used as given (a bad value, two options that exclude each other)."""


class DataError(HfspeechError, ValueError):
    """A data set that cannot be used as given (missing column, unknown label, no files, a layout that does
    not say which file has which label ...). Raised by `hfspeech.data`; defined here so that its modules
    (folders, manifests, loading) share it without importing each other."""


class OutputWriteError(HfspeechError, OSError):
    """An output that cannot be written where the user sent it: no space left on the device (or over `ulimit
    -f`), a read-only disk. Raised where the write fails, so that the message names that path (not a
    temporary file) and says what the next run does with what was left: resume, or redo it."""


# What a write to a full or read-only disk raises (EFBIG: over `ulimit -f`), not a missing or unreadable input.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
NOT_WRITABLE_REASONS = (os.strerror(errno.EROFS), os.strerror(errno.EACCES))  # room cannot mend: "make it writable"


def cannot_write(path, error, then: str, what: str = "") -> OutputWriteError:
    """`PATH: cannot write (No space left on device); THEN` for an `OSError` of a write to `path` (None: a write
    whose file Python does not know, as a `write` or `close` on a full disk), or for a reason given as text.
    `what` names what was being written when `path` is a folder: `cannot write a checkpoint (...)`. THEN's "make
    room" is "make it writable" where the disk is read-only or the folder not this user's (`NOT_WRITABLE_REASONS`);
    where it is another user's, the reason names the user and the mode, and THEN whom to ask (`file_owners`)."""
    reason = error if isinstance(error, str) else (error.strerror or error)
    if str(reason) in NOT_WRITABLE_REASONS:
        from hfspeech.file_owners import reason_and_remedy  # (only on a refused write)
        reason, remedy = reason_and_remedy(path, str(reason))
        then = then.replace("make room", remedy, 1)
    return OutputWriteError(f"{path}: " * bool(path) + f"cannot write{' ' * bool(what)}{what} ({reason}); {then}")


# What torch.save's C++ writer says when a write fails, with no errno and no file name: `[enforce fail at ...] .
# unexpected pos 576 vs 534`, `PytorchStreamWriter failed writing file data/0: ...`, `basic_ios::clear: iostream error`.
TORCH_WRITER_FAILURES = ("unexpected pos", "PytorchStreamWriter failed writing", "iostream error")


def disk_write_failure(error: BaseException) -> Optional[str]:
    """The reason when `error` is a write a full or read-only disk refused, else None -- the one rule for every
    save: an `OSError` with an errno in `WRITE_ERRNOS`; torch.save's `RuntimeError` (`TORCH_WRITER_FAILURES`:
    Trainer's training_args.bin and optimizer state); safetensors' `SafetensorError` (save_pretrained, told by its
    type's name: this module imports no library), which carries the OS error only in its words (`I/O error: File
    too large (os error 27)`). Each was a traceback wherever a save was not wrapped by hand. An error raised while
    handling such a failure is that failure: datasets' `map` closes its writer again after a full disk, and Arrow's
    `ValueError: I/O operation on closed file` hid the `File too large` (the frozen-feature cache)."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return error.strerror or str(error)
    if isinstance(error, RuntimeError) and any(failure in str(error) for failure in TORCH_WRITER_FAILURES):
        return "torch could not write its file"
    found = type(error).__name__ == "SafetensorError" and re.search(r"I/O error: (.*) \(os error (\d+)\)", str(error))
    if found and int(found.group(2)) in WRITE_ERRNOS:
        return found.group(1)
    context = None if error.__suppress_context__ else error.__context__
    return disk_write_failure(context) if context is not None else None


def near_causes(error: BaseException) -> list[BaseException]:
    """`error`, the error it was raised from and the one raised while it was handled: where a missing package or
    system library shows one level down (datasets and torchcodec re-raise a failed import as their own). The CLI and
    a launched run's processes look at the same errors, so they say the same line."""
    return [each for each in (error, error.__cause__, error.__context__) if each is not None]


def first_in_chain(error: Optional[BaseException], matches) -> Optional[BaseException]:
    """The first of `error` and the errors it was raised from (`__cause__`) or while handling (`__context__`, unless
    suppressed) that `matches` says is the one; None where none is: libraries re-raise an OS or memory error as
    their own, and the CLI's one-line messages look for the original."""
    while error is not None and not matches(error):
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return error


@contextlib.contextmanager
def writing_to(path, then: str, what: str = ""):
    """Inside, a write that fails for want of space (or on a read-only disk) is `cannot_write(path, ...)`: torch's
    and safetensors' failed writes too (`disk_write_failure`), which are not OSErrors. The one wrapper for every
    save (a checkpoint's too: `training.checkpoints.checkpoint_write_errors` names `what` it writes)."""
    try:
        yield
    except Exception as error:
        reason = None if isinstance(error, HfspeechError) else disk_write_failure(error)  # one rule for "a full disk"
        if reason is None:
            raise
        from hfspeech.written_elsewhere import written_elsewhere  # (only on a failed write)

        raise written_elsewhere(error, path, reason) or cannot_write(path, reason, then, what) from error


@contextlib.contextmanager
def stdout_write_errors():
    """A write to stdout that a full or read-only disk refuses (`hfspeech --help > /dev/full`, `predict --json >
    /dev/full`) becomes a one-line `OutputWriteError` naming stdout: Python's error names no file, and the line
    said only "cannot write". A reader that has gone (`BrokenPipeError`) passes through, for `hfspeech.cli.main`
    to end quietly. The one wrapper of every print of results, the help and the version."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        reason = disk_write_failure(error)
        if reason is None:
            raise
        drop_stdout()
        raise cannot_write("stdout", reason, "make room where stdout goes, or send it elsewhere") from None


def drop_stdout() -> None:
    """Point stdout at the null device, as Python's documentation does for a reader that has gone: what stdout
    still holds would fail again at the next flush (at exit), a second `error:` line for the same failure."""
    with contextlib.suppress(OSError, ValueError):  # stdout is no file (captured, closed): nothing is retried
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def first_few(items, limit: int = 3, separator: str = ", ") -> str:
    """A long list as a one-line message names it: the first `limit` items, then how many more
    (`a, b, c and 4 more`), so the line stays short and still says how big the problem is. An item holding the
    separator is quoted (repr): "beep, glass, breaking, siren" named three labels or four."""
    items = [repr(text) if separator.strip() and separator.strip() in text else text for text in map(str, items)]
    more = f" and {len(items) - limit} more" if separator == ", " else f"{separator}and {len(items) - limit} more"
    return separator.join(items[:limit]) + (more if len(items) > limit else "")


def did_you_mean(words, known, cutoff: float = 0.6) -> str:
    """` (did you mean ['--learning_rate']?)`: the nearest known name of each unknown word, or "" if none is near."""
    import difflib
    near = [match for word in words for match in difflib.get_close_matches(word, list(known), n=1, cutoff=cutoff)]
    return f" (did you mean {near}?)" if near else ""


def refuse_folder_named_like_a_file(folder: str, flag: str, holds: str, instead: str) -> None:
    """`evaluate --output metrics.json` (argparse's prefix of --output_dir) made a folder metrics.json, as `average
    --output x.json` did: a new output folder named like a file (.json, .jsonl, .csv) is refused, saying `instead`."""
    if folder.lower().endswith((".json", ".jsonl", ".csv")) and not os.path.exists(folder):
        raise UsageError(f"{flag} {folder}: names a folder for {holds}, not a file; {instead}")


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


@contextlib.contextmanager
def log_lines_hidden(logger_name: str, words: str):
    """Inside, the records of the logger `logger_name` that hold `words` are not shown (a library's note a user
    cannot act on, or one hfspeech says better in one line); every other record, and every other logger, stand."""
    import logging
    logger = logging.getLogger(logger_name)
    hide = lambda record: words not in record.getMessage()  # noqa: E731
    logger.addFilter(hide)
    try:
        yield
    finally:
        logger.removeFilter(hide)
