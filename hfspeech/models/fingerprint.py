"""Which model a derived file was made from: the sha256 of a model folder's config.json and weight files.

A TorchScript file traced from a training run (`hfspeech.export.torchscript_export`) can run in the run's
place, without transformers, only while the run still holds the config and weights it was traced from. The
export records `folder_fingerprint(run)` in `TRACED_FROM` beside the file; `hfspeech.inference.backends`
compares it with the run's current fingerprint before using the file. Hashing a baseline's weights takes
milliseconds (a few hundred KB); nothing here imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hfspeech.models.loading import WEIGHT_FILES

TRACED_FROM = "traced_from.json"
SHARD_PATTERN = "model-*-of-*.safetensors"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_fingerprint(folder: str | Path) -> dict[str, str]:
    """`{file name: sha256}` of the files that decide what a saved model computes: config.json and its weights."""
    folder = Path(folder)
    names = ["config.json", *WEIGHT_FILES, *sorted(path.name for path in folder.glob(SHARD_PATTERN))]
    return {name: file_sha256(folder / name) for name in names if (folder / name).is_file()}


def write_traced_from(model_dir: str | Path, output_dir: str | Path) -> None:
    """Record in `output_dir` which config and weights of `model_dir` its exported file was made from."""
    record = {"fingerprint": folder_fingerprint(model_dir)}
    (Path(output_dir) / TRACED_FROM).write_text(json.dumps(record, indent=2) + "\n")


def made_from(export_dir: str | Path, model_dir: str | Path) -> bool:
    """Whether `export_dir`'s file was made from the config and weights `model_dir` holds now."""
    record = Path(export_dir) / TRACED_FROM
    try:
        recorded = json.loads(record.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(recorded) and recorded == folder_fingerprint(model_dir)
