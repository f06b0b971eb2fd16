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


def without_generation_sklearn() -> None:
    """Import transformers' text-generation helpers without scikit-learn, in a CLI process that only classifies.

    `transformers.generation.candidate_generator` imports `sklearn.metrics` when it loads (for assisted
    decoding's `roc_curve`), and every `PreTrainedModel` import loads it: about a quarter of a cold
    `hfspeech predict` with a PyTorch model (scipy comes with it). A classifier never generates, so for
    `predict` and `stream` the module is imported once with transformers told sklearn is absent. Only these
    commands' own processes do this; the library (`AudioClassifier`) never changes transformers' state.
    """
    import importlib
    import sys

    if "transformers.generation.candidate_generator" in sys.modules:
        return
    from transformers.utils import import_utils

    available = import_utils._sklearn_available
    import_utils._sklearn_available = False
    try:
        importlib.import_module("transformers.generation.candidate_generator")
    finally:
        import_utils._sklearn_available = available


def prepare_cold_start(model: str, backend) -> None:
    """Before loading a model for `predict` / `stream`: a PyTorch one skips scikit-learn (see above); an export
    imports neither torch nor transformers at all."""
    from hfspeech.inference.backends import locate_model

    try:
        kind = locate_model(model, backend)[0]
    except Exception:  # a bad path: the loader reports it
        return
    if kind == "pytorch":
        without_generation_sklearn()
