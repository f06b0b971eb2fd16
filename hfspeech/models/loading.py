"""`from_pretrained` of a folder or Hub id, with the user's mistakes turned into one-line errors.

transformers and huggingface_hub report a mistyped folder as an invalid repo id (`HFValidationError`) or a
failed download (`OSError`), a truncated `model.safetensors` as a safetensors header error that names no
file, and a checkpoint whose head has another number of labels as a `RuntimeError` about a `Linear` layer.
`pretrained_errors` wraps any `*.from_pretrained` call and raises `NotAModelError` instead, naming the folder
(or file) and what to do; anything else passes through untouched.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator

from hfspeech.errors import HfspeechError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


class NotAModelError(HfspeechError, ValueError):
    """A path that does not hold a saved model (no config.json, or no weights), or one that cannot be loaded."""


def is_local_path(name_or_path: str) -> bool:
    """Whether a name can only be meant as a folder: it exists, or it is no valid Hub repo id."""
    if os.path.exists(name_or_path):
        return True
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(str(name_or_path))
    except HFValidationError:
        return True
    return str(name_or_path).startswith((".", "~")) or str(name_or_path).count("/") > 1


@contextmanager
def pretrained_errors(name_or_path: str) -> Iterator[None]:
    """Translate what `from_pretrained(name_or_path)` raises for a user mistake into a `NotAModelError`."""
    try:
        yield
    except HfspeechError:
        raise
    except OSError as error:  # HFValidationError is a ValueError, handled below
        if not os.path.exists(name_or_path):
            raise NotAModelError(f"{name_or_path}: model folder not found, and it could not be loaded from the Hub "
                                 f"({_first_line(error)})") from error
        raise NotAModelError(f"{name_or_path}: cannot be loaded: {_first_line(error)}") from error
    except Exception as error:
        message = _translate(name_or_path, error)
        if message is None:
            raise
        raise NotAModelError(message) from error


def _translate(name_or_path: str, error: Exception) -> str | None:
    from huggingface_hub.utils import HFValidationError

    text = str(error)
    if isinstance(error, HFValidationError) or (not os.path.exists(name_or_path) and is_local_path(name_or_path)):
        return f"{name_or_path}: model folder not found"
    if "size mismatch" in text:
        shapes = re.findall(r"torch\.Size\(\[(\d+)", text)
        sizes = f" (the checkpoint's head has {shapes[0]} outputs, {shapes[1]} are needed)" if len(shapes) > 1 else ""
        return (f"{name_or_path}: its classification head does not fit the number of labels{sizes}; train a new "
                "head with --ignore_mismatched_sizes True (or ignore_mismatched_sizes=True)")
    weights = _weights_file(name_or_path)
    if type(error).__name__ == "SafetensorError" or "deserializ" in text.lower() or "unpickl" in text.lower():
        return f"{weights}: corrupt or truncated weights file, cannot be loaded ({_first_line(error)})"
    return None


def _weights_file(folder: str) -> str:
    return next((os.path.join(folder, name) for name in WEIGHT_FILES[:2] if os.path.exists(os.path.join(folder, name))),
                folder)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
