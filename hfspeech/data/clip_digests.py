"""Which clips a model was trained on, recorded so that an evaluation can tell when it scores them again.

`hfspeech evaluate MODEL --data_dir X` reports accuracy on whatever X holds. When X is (or contains) the
model's own training data -- the run's folder evaluated by mistake, a copy of it, a test manifest that shares
files with the training one -- the number looks like generalisation and is memory. The split audit
(`data.split_audit`) catches that inside one run; across runs only a record of the training clips can.

Training writes `training_clips.json` beside the model: a short digest of each train and validation clip's
bytes (file contents, or the bytes a dataset holds), not paths: the same recording copied or renamed is still
found, and the record tells nothing about where the user keeps their data. `hub.stage` does not publish it.
Evaluation digests its clips the same way and warns, with the count, when any are in the record. A model without
the record (a run of an hfspeech version before it was written, a model trained elsewhere) cannot be checked, and
that is said too (`trained_on_warning`): an old run scored on its own clips was staged as "0.250 on 48 clips"
without a word, as if they were held out.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from datasets import Audio, Dataset, DatasetDict

from hfspeech.data.clip_names import builder_version
from hfspeech.data.columns import column_values
from hfspeech.errors import first_few

TRAINING_CLIPS_FILE = "training_clips.json"
DIGEST_CHARS = 16  # 64 bits of SHA-1: a chance collision among a million clips is ~1e-8
RECORDED_SPLITS = ("train", "validation")  # what the model learnt from, and what chose its best checkpoint
# The digest of no bytes: a 0-byte file's, which is no recording. Records written before `prepare.kept_rows` hold
# it (a skipped empty file), and then every empty file anywhere counted as trained on: never a match.
EMPTY_DIGEST = hashlib.sha1(b"").hexdigest()[:DIGEST_CHARS]
UNMATCHABLE = {"", EMPTY_DIGEST}  # "": a file that could not be read


def clip_digests(split: Dataset) -> list[str]:
    """A digest of each clip's bytes, in the split's order ("" for a file that cannot be read: the decoder
    reports it by name later)."""
    return [_digest_of(path, data) for path, data in audio_sources(split)]


def audio_sources(split: Dataset) -> list[tuple[Optional[str], Optional[bytes]]]:
    """Each clip's (path, bytes) as its undecoded `audio` cell holds them (a path string, or a dict)."""
    sources = []
    for audio in column_values(split.cast_column("audio", Audio(decode=False)), "audio"):
        sources.append((audio.get("path"), audio.get("bytes")) if isinstance(audio, dict) else (audio, None))
    return sources


def folder_and_name(path: str) -> str:
    """A file as a warning or a published record names it: its folder and name (`yes/a.wav`). Warnings reach the
    model card, which is published: the full path would show where the user keeps their data."""
    return os.path.join(*Path(path).parts[-2:])


# {(path, device, inode, size, mtime, ctime): digest} of the files read since this run's data was prepared: the
# decoded audio's key (`files_content_key`) and `training_clips.json` (`record_training_clips`) read each clip once,
# not twice (20,000 one-second clips: 1.4 s a read). Forgotten as each run prepares its data, and as each `evaluate`
# and int8 gate starts (`forget_read_files`): kept for the process, a clip rewritten within a second on a file
# system of 1-s times was read back stale, and a notebook that only evaluates kept every folder's digests.
_read_digests: dict[tuple, str] = {}
MAX_REMEMBERED = 500_000


def forget_read_files() -> None:
    """Every file read again from here on: a new run's data (`data.prepare.prepare_dataset`), a new evaluation
    (`evaluation.evaluate_model.evaluate_model`) or int8 gate (`inference.agreement.gate_int8`)."""
    _read_digests.clear()


def _digest_of(path: Optional[str], data: Optional[bytes]) -> str:
    if data is not None:
        return hashlib.sha1(data).hexdigest()[:DIGEST_CHARS]
    try:
        stat = os.stat(path)
        known = (path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        digest = _read_digests.get(known)
        if digest is None:
            if len(_read_digests) >= MAX_REMEMBERED:
                _read_digests.clear()
            digest = _read_digests[known] = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:DIGEST_CHARS]
        return digest
    except (OSError, TypeError, ValueError):
        return ""


def files_content_key(split: Dataset) -> str:
    """One digest of the bytes of every clip `split` reads from a file, in its order ("" where none is read from a
    file): what keys its decoded audio (`data.decode_retry`). A file's size, mtime and ctime do not tell every
    rewrite: `cp -p` of a clip of the same length over another keeps the size and mtime, and a FUSE mount that
    reports the mtime as the ctime (bindfs --ctime-from-mtime, object-store mounts), or Windows, where `st_ctime` is
    the creation time, keeps the ctime too; the earlier samples were then served from the cache. Each file is read
    (2,000 FSDD clips, 14 MB, in the page cache: 0.05-0.1 s), as `record_training_clips` reads it again for
    `training_clips.json`. Clips held as bytes are keyed by the Arrow files that hold them too (`held_bytes_key`):
    with "" for them, every version of a dataset that holds its audio had the same key, and a clip's bytes changed in
    a Hub dataset left its earlier decoding for good (`data.decoded_caches`); a split of files alone keeps its key."""
    paths = _file_paths(split)
    held = held_bytes_key(split)
    if not paths and held is None:
        return ""
    digests = hashlib.sha256()
    for path in paths:
        digests.update(f"{_digest_of(path, None)}\n".encode())
    if held is None:  # files alone: the key it always had
        return digests.hexdigest()
    return hashlib.sha256(f"{digests.hexdigest()}\n{held}".encode()).hexdigest()


def held_bytes_key(split: Dataset) -> Optional[str]:
    """What tells one version of the clips a split holds as bytes from another, without reading them: the folder a
    datasets builder wrote that version into (`clip_names.builder_version`: named by a hash of the data files, times
    included, or by the Hub commit), whatever hfspeech's maps wrote beside it (a label column encoded, groups added:
    the same bytes). None where no clip is held as bytes, the split is held in memory, or its files are not a
    builder's (a `save_to_disk` folder; a streamed dataset's evaluation rows, written into each run's scratch
    folder: keyed by their paths, they were decoded again on every run): its fingerprint keys it, as before."""
    if "audio" not in split.column_names or not split.cache_files:
        return None
    column = split.data.table.column("audio")
    if not is_path_struct(column) or not holds_bytes(column):
        return None
    versions = {builder_version(cache["filename"]) for cache in split.cache_files}
    if None in versions:  # not a builder's (a streamed split's evaluation rows, written anew by each run): as before
        return None
    return hashlib.sha256(json.dumps(sorted(os.path.realpath(version) for version in versions)).encode()).hexdigest()


def is_path_struct(column) -> bool:
    """Whether an Arrow `audio` column is datasets' `{path, bytes}` struct (not decoded arrays)."""
    import pyarrow as pa

    return pa.types.is_struct(column.type)


def holds_bytes(column) -> bool:
    """Whether an Arrow `{path, bytes}` audio column holds any clip as bytes (a Hub dataset's), not paths alone."""
    import pyarrow.compute as pc

    return bool(pc.any(pc.is_valid(pc.struct_field(column, "bytes"))).as_py())


def _file_paths(split: Dataset) -> list[Optional[str]]:
    """The path of each clip of `split` that is read from a file (its `audio` struct has no bytes), from Arrow
    without reading any clip's bytes into Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "audio" not in split.column_names:
        return []
    column = split.with_format("arrow")[:].column("audio")
    if not pa.types.is_struct(column.type):  # paths as text, not yet cast, are files; bytes alone are not
        return column.to_pylist() if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else []
    paths = []
    for chunk in column.chunks:
        from_file = pc.and_(pc.is_valid(chunk), pc.is_null(chunk.field("bytes")))
        paths += pc.filter(chunk.field("path"), from_file).to_pylist()
    return paths


def record_training_clips(dataset: DatasetDict) -> dict[str, list[str]]:
    """The digests of the splits a model learns from, as `write_training_clips` saves them."""
    return {name: sorted(set(clip_digests(dataset[name])) - UNMATCHABLE) for name in RECORDED_SPLITS if name in dataset}


def write_training_clips(record: dict[str, list[str]], folder: str) -> None:
    with open(os.path.join(folder, TRAINING_CLIPS_FILE), "w", encoding="utf-8") as f:
        json.dump(_as_json(record), f)


def _as_json(record: dict) -> dict:
    return {"digest": f"sha1[:{DIGEST_CHARS}] of each clip's file bytes",
            **{name: sorted(record[name]) for name in RECORDED_SPLITS if name in record}}


def merged_training_clips(records: list[Optional[dict[str, set[str]]]]) -> Optional[dict]:
    """The union of several runs' records (`hfspeech average`; each as `read_training_clips` gives it), as JSON;
    None unless every run has one."""
    if not records or any(record is None for record in records):
        return None
    return _as_json({name: set().union(*(record[name] for record in records)) for name in RECORDED_SPLITS})


def read_training_clips(model: str) -> Optional[dict[str, set[str]]]:
    """The record of the run a model comes from: beside it, or one folder up for a checkpoint or an export
    (`run/checkpoint-40`, `run/onnx`, `run/onnx/model.onnx`). None when there is none or it cannot be read."""
    folder = Path(model) if Path(model).is_dir() else Path(model).parent
    for candidate in (folder, folder.parent):
        path = candidate / TRAINING_CLIPS_FILE
        if path.is_file() and (candidate == folder or (candidate / "config.json").is_file()):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                return {name: set(record.get(name) or []) - UNMATCHABLE for name in RECORDED_SPLITS}
            except (OSError, ValueError, TypeError):
                return None
    return None


def heard_clips(record: dict[str, set[str]], split: Dataset) -> Optional[tuple[int, str]]:
    """How many of `split`'s clips the record's model trained on or chose its checkpoint with, and the detail a
    warning gives ("3 in its train split, 1 in its validation split; yes/a.wav, ..."); None when none."""
    sources = audio_sources(split)
    digests = [_digest_of(path, data) for path, data in sources]
    seen = {name: [i for i, digest in enumerate(digests) if digest not in UNMATCHABLE and digest in record[name]]
            for name in RECORDED_SPLITS}
    indices = sorted(set(seen["train"]) | set(seen["validation"]))
    if not indices:
        return None
    counts = ", ".join(f"{len(hits)} in its {name} split" for name, hits in seen.items() if hits)
    names = [folder_and_name(sources[i][0]) if sources[i][0] else f"row {i}" for i in indices]
    return len(indices), f"{counts}; {first_few(names)}"


def seen_clips_warning(record: dict[str, set[str]], split: Dataset) -> Optional[str]:
    """A warning naming how many of `split`'s clips the model trained on (or chose its checkpoint with)."""
    if (heard := heard_clips(record, split)) is None:
        return None
    return (f"{heard[0]} of {len(split)} clips are clips the model was trained on ({heard[1]}): these "
            "scores are not for recordings it never heard")


def unchecked_clips_warning() -> str:
    """Said where the check cannot be made: silence read as "none of these clips were trained on". Names no path
    (it reaches the published model card)."""
    return (f"whether these clips are ones the model was trained on is not checked: its run has no readable "
            f"{TRAINING_CLIPS_FILE} (runs of earlier hfspeech versions, and models trained by other tools, have "
            "none), so these scores may be on recordings it heard")


def trained_on_warning(model: str, split: Dataset) -> Optional[str]:
    """The one line a score on `split` needs about the model's training clips: how many it heard
    (`seen_clips_warning`), that this cannot be checked (no record), or None when it heard none of them."""
    record = read_training_clips(model)
    return unchecked_clips_warning() if record is None else seen_clips_warning(record, split)
