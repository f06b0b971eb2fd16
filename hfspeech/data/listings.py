"""What a local data path holds, told without reading its audio: a manifest's bytes, or a folder's audio files by
path and size (`path_listing`): equal for a copy of the same data wherever it lies, so a run resumed from data
that moved is told it is the same (`training.resume_inputs`), and a staged card tells generated data unchanged
since training (`hub.card_data`). Here, below both, so the two read one listing: two copies would drift apart.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional


def path_listing(path: str) -> Optional[str]:
    """What a local data path holds: a manifest's bytes, or a folder's audio files as loading finds them
    (`walk_audio_files`: links to folders followed, hidden and `__*` left out), each one's path inside the folder
    and size, with the bytes of the files that decide splits and labels (the root's other files, e.g. Speech
    Commands' lists, and metadata files: a same-size edit moves clips). Equal for a copy of the same data wherever
    it lies; None where it cannot be told (unreadable, or nothing found: two empty listings are no evidence)."""
    if not os.path.isdir(path):
        return file_digest(path)
    from hfspeech.data.folders import DATASETS_LAYOUT_FILES, FolderLayoutError, walk_audio_files

    try:
        audio, ignored = walk_audio_files(Path(path))
    except FolderLayoutError:
        return None
    deciding = sorted(entry["path"] for entry in ignored if entry["reason"].startswith("not an audio file") and (
        os.path.dirname(entry["path"]) == os.path.normpath(path) or os.path.basename(entry["path"]) in
        DATASETS_LAYOUT_FILES))
    if not audio and not deciding:
        return None
    digest = hashlib.sha1()
    for _, full in audio:
        digest.update(f"{os.path.relpath(full, path)}\0{_size(full)}\n".encode("utf-8", "surrogateescape"))
    for full in deciding:
        digest.update(f"{os.path.relpath(full, path)}\0{file_digest(full)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _size(path: str) -> int:
    """One stat (a file deleted during the walk crashed it between exists and getsize): -1 where it is gone."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def file_digest(path: str) -> Optional[str]:
    """The SHA-1 of a file's bytes (a manifest's listing); None where it cannot be read (loading names it)."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha1").hexdigest()
    except OSError:
        return None
