"""What several subcommands share: the model argument, backends, and how a user's mistake is reported."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from hfspeech.errors import HfspeechError

MODEL_HELP = "model folder (or Hub id), `hfspeech export` folder, or .onnx / .pt file"
BACKENDS = ["pytorch", "onnx", "torchscript"]


def one_line(error: BaseException) -> str:
    """The error's message on one line: `error: <message>`."""
    return "error: " + " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def print_error(error: BaseException) -> None:
    print(one_line(error), file=sys.stderr)


@contextmanager
def reported_as_user_errors(*kinds: type[BaseException]):
    """Inside, the library errors of `kinds` that a user's input causes (a missing file: OSError; a value a
    library refuses: ValueError) become `HfspeechError`s with the same message, so that `hfspeech.cli.main`
    prints them as one line and exits with 2, as it does every error of hfspeech's own."""
    try:
        yield
    except HfspeechError:
        raise
    except kinds as error:
        raise HfspeechError(str(error)) from error
