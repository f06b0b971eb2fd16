"""Which model a derived file was made from: the sha256 of a model folder's config.json and weight files.

A TorchScript file traced from a training run (`hfspeech.export.torchscript_export`) can run in the run's
place, without transformers, only while the run still holds the config and weights it was traced from. The
export records `folder_fingerprint(run)` in `TRACED_FROM` beside the file; `hfspeech.inference.backends`
compares it with the run's current fingerprint before using the file. Hashing a baseline's weights takes
milliseconds (a few hundred KB), a 290 MB Whisper-base about 0.5 s, so the record also keeps each file's
`os.stat` (size, mtime, ctime, inode), and a file whose stat is as recorded is not read again: rewriting,
replacing or copying a file changes its ctime or inode, which no tool can set back (git's index does the
same). Nothing here imports torch or transformers.

It also gives the weights hfspeech saves the mode any new file gets (`saving_weights`): safetensors 0.8 writes
them through a temporary file, 0600 (safetensors#782), where every other file of a run is 0644, so a run copied into
a container and used as another user could not be loaded, nor could its exports be checked (`made_from`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

from hfspeech.errors import writing_to
from hfspeech.models.config_json import INT8_CHECK_FILE
from hfspeech.models.loading import WEIGHT_FILES

logger = logging.getLogger(__name__)

TRACED_FROM = "traced_from.json"
# Files an export writes (config.json and preprocessor_config.json are rewritten by every export); here, below the
# exporters, for training's fresh start (`training.run_folder`) too.
EXPORT_ONLY_FILES = ("model.onnx", "model_quantized.onnx", "ort_config.json", "model.torchscript.pt", TRACED_FROM,
                     INT8_CHECK_FILE)  # an earlier export's gate record describes a file this export replaces
SHARD_PATTERNS = ("model-*-of-*.safetensors", "pytorch_model-*-of-*.bin")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_files(folder: Path) -> list[str]:
    """The config and weights (any format, shards too) in `folder`: what decides what a saved model computes."""
    shards = sorted(path.name for pattern in SHARD_PATTERNS for path in folder.glob(pattern))
    names = ["config.json", *WEIGHT_FILES, *shards]
    return [name for name in names if (folder / name).is_file()]


def folder_fingerprint(folder: str | Path) -> dict[str, str]:
    """`{file name: sha256}` of the files that decide what a saved model computes: config.json and its weights."""
    folder = Path(folder)
    return {name: file_sha256(folder / name) for name in model_files(folder)}


def folder_stats(folder: str | Path) -> dict[str, list[int]]:
    """`{file name: [size, mtime_ns, ctime_ns, inode]}` of the same files: equal means not rewritten since."""
    folder = Path(folder)
    stats = {name: (folder / name).stat() for name in model_files(folder)}
    return {name: [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino] for name, s in stats.items()}


def write_traced_from(model_dir: str | Path, output_dir: str | Path) -> None:
    """Record in `output_dir` which config and weights of `model_dir` its exported file was made from."""
    stats = folder_stats(model_dir)  # taken first: a file rewritten while it is hashed then never matches
    record = {"fingerprint": folder_fingerprint(model_dir), "stat": stats}
    (Path(output_dir) / TRACED_FROM).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def made_from(export_dir: str | Path, model_dir: str | Path) -> bool:
    """Whether `export_dir`'s file was made from the config and weights `model_dir` holds now: by their stat
    when it is as recorded (no file read), else by their sha256. A file that cannot be read (another user's 0600
    weights) cannot tell: the others decide, with a warning, since the export itself needs none of them."""
    try:
        record = json.loads((Path(export_dir) / TRACED_FROM).read_text(encoding="utf-8"))
        recorded = record.get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    if not recorded:
        return False
    if record.get("stat") and set(record["stat"]) == set(recorded) and record["stat"] == folder_stats(model_dir):
        return True
    current, unreadable = readable_fingerprint(model_dir)
    if any(current[name] != recorded.get(name) for name in current) or set(recorded) - set(current) - unreadable:
        return False
    if unreadable:
        logger.warning("warning: %s: cannot read %s, so cannot tell whether %s was made from it; used as it is",
                       model_dir, ", ".join(sorted(unreadable)), export_dir)
    return True


def readable_fingerprint(folder: str | Path) -> tuple[dict[str, str], set[str]]:
    """`folder_fingerprint` of the files that can be read, and the names of those that cannot."""
    folder, fingerprint, unreadable = Path(folder), {}, set()
    for name in model_files(folder):
        try:
            fingerprint[name] = file_sha256(folder / name)
        except OSError:
            unreadable.add(name)
    return fingerprint, unreadable


def usual_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the umask (read from /proc where Linux shows it, since
    setting it to read it back would change it for an instant under every other thread)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as status:
            return 0o666 & ~int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def with_usual_modes(folder: str | Path) -> None:
    """The weight files of `folder` given `usual_file_mode()`; left as they are where modes cannot be set."""
    folder, mode = Path(folder), usual_file_mode()
    for name in model_files(folder):
        with contextlib.suppress(OSError):  # another owner's file, a file system without modes
            if (folder / name).stat().st_mode & 0o777 != mode:
                os.chmod(folder / name, mode)


@contextlib.contextmanager
def saving_weights(folder: str | Path, then: str, what: str = "", weights_in: str | Path | None = None):
    """Around a save of model weights: `errors.writing_to(folder, then, what)`, then the weights written (in
    `weights_in`, else `folder`) given the mode any other file gets (`with_usual_modes`)."""
    with writing_to(folder, then, what):
        yield
    with_usual_modes(weights_in or folder)
