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
