"""The version of an audio folder's metadata files, as the name of datasets' audiofolder configuration.

datasets keys a local folder's cached Arrow tables by each data file's mtime alone (`data_files`' origin
metadata). A `metadata.csv` relabelled in place with its mtime put back (`cp -p`, `rsync -t`, `touch -r`, an
editor that keeps it, or a notebook's `os.utime`) was read from the cache of the earlier labels, in the same
process and in a fresh one: `high` renamed `HIGH`, and the next run still trained `high`. hfspeech's own listing
of a folder keys every file by `file_stat` (size, mtime, ctime); here the metadata files are keyed by their bytes,
which also tells a rewrite that keeps the ctime (FUSE mounts that report the mtime as the ctime). They are small
(a 100,000-row CSV: a few MB, milliseconds to hash); audio files are not read here: their bytes key the decoded
audio (`clip_digests.files_content_key`), and a file added or removed changes datasets' own key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

from datasets import DatasetDict, load_dataset

from hfspeech.data.folders import DATASETS_LAYOUT_FILES
from hfspeech.errors import DataError


def read_by_audiofolder(root: Path, ignored: list[dict[str, str]], cache_dir: Optional[str]) -> DatasetDict:
    """`root` read by datasets' audiofolder builder, under a configuration named by its metadata files' bytes
    (`metadata_config_name`); drop_labels=False: the parent folder is the label even with one class folder."""
    return load_dataset("audiofolder", metadata_config_name(ignored), data_dir=str(root), cache_dir=cache_dir,
                        drop_labels=False)


def metadata_config_name(ignored: list[dict[str, str]]) -> str:
    """`load_dataset("audiofolder", name=...)` for a folder whose walk (`folders.walk_audio_files`) set aside
    `ignored` (its metadata files among them): `metadata-` and a digest of each metadata file's path and bytes.
    A name of datasets' config id, so metadata changed in any way is read again, never served from the cache."""
    digest = hashlib.sha256()
    for path in sorted(entry["path"] for entry in ignored if Path(entry["path"]).name in DATASETS_LAYOUT_FILES):
        digest.update(f"{path}\0".encode() + _file_digest(Path(path)))
    return f"metadata-{digest.hexdigest()[:16]}"


def _file_digest(path: Path) -> bytes:
    """The file's SHA-256, read in blocks (a `metadata.parquet` need not fit in memory), or the one line saying why
    it cannot be read: a link to nothing named with its target (datasets passed over it; the folder's labels may
    be in it)."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").digest()
    except OSError as error:
        if path.is_symlink() and not path.exists():
            raise DataError(f"{path}: a link to {os.readlink(path)}, which does not exist; mend or remove the link") \
                from None
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None

