"""Earlier decodings of a split, superseded by a newer decoder or by clips rewritten since, removed once unused.

A split's decoded cache is named by everything that decides its rows (`decode_retry.decoded_fingerprint`), its
files' bytes and the decoder's code included. An upgrade that changed the decoder (an error message's wording too),
or a clip rewritten in place, names a new decoding, and the earlier one stayed for good: 1.2 GB for 20,000 one-
second clips, per upgrade and per settings. Each decoding is now recorded under its family (`decoded_family`: the
split's clips and the decoding settings, without the files' bytes or the decoder) in a small JSON file per family,
`$HF_DATASETS_CACHE/hfspeech-decoded-families/<family>.json`, written whole (renamed in), with the decoder that made
it, the clips' bytes it holds (`clip_digests.files_content_key`) and when a run last used it. When a run decodes a
split or reads its decoding back, the family's other decodings are removed, with their rows decoded again
(`decode_retry.retried_files_of`): one of the same decoder and other bytes at once (its clips were rewritten:
nothing can read it again), any other once no run has used it for `UNUSED_DECODER_DAYS` (two hfspeech versions used
in turn, in two environments or by two people sharing a cache, would otherwise remove each other's decoding and
decode the corpus again on every run; so would two routes to the same bytes: a table decoded whole for its carved
splits and the same table read alone), and either only where no other live hfspeech run holds its folder
(`cache_users.held_alone`): a run still training on one keeps it, and the next run that uses the family removes it.
What was computed from a decoding goes with it: a probe's frozen features are named after the decoded table they
read (`derived_cache_file`: `<table>-frozen-<key>.arrow`), and nothing could read them once it was gone
(`training.feature_cache` records its own families of them the same way, `superseded_removed`: the features of one
decoding and encoder made by other library versions).
A split whose audio a dataset holds as bytes (a Hub dataset, a Parquet clone of one) is not known by its paths: its
family is the dataset it was loaded from, its configuration, split and rows (`_held_split_key`), and its content
the version datasets wrote it into (`clip_digests.held_bytes_key`), so a new version of the dataset supersedes the
last at once; keyed by the split's fingerprint, each version was a family of its own and stayed for good. One
built in Python or held in memory is still its own family. A decoding at other settings is another family and
stays (two models at 8 and 16 kHz keep two decodings of one folder); datasets' `cleanup_cache_files` removes every
cache file of a dataset but the one in use, those too.
Nothing is written where the cache cannot be written (a team's read-only cache): no record, no removal; a run that
reads such a cache records no use, so its decoding may go 7 days after its owner's last use of it. An older hfspeech
reads no records: where a newer one removed its decoding, it decodes the split again.

The decoded split is written here too (`decoded_into_cache`). Imports `data.cache_users`, `data.clip_names`,
`data.decode_retry` and `errors`; costs a warm run one small file read and write per split, no audio.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Callable, Optional

from hfspeech.data import cache_users
from hfspeech.data.clip_digests import holds_bytes, is_path_struct
from hfspeech.data.clip_names import builder_version, loaded_source, stored_run
from hfspeech.data.decode_retry import DECODED_LAYOUT, decoder_code, retried_files_of
from hfspeech.errors import writing_to

logger = logging.getLogger("hfspeech.data")

FAMILIES_FOLDER = "hfspeech-decoded-families"  # under the datasets cache: one `<family>.json` per family
UNUSED_DECODER_DAYS = 7  # another decoder's decoding is kept until no run has used it for this long
DERIVED_MARK = "-frozen-"  # `<decoded table>-frozen-<key>.arrow`: a probe's features, computed from that decoding


def decoded_into_cache(split, cache_file_name: Optional[str], decode, **map_arguments):
    """`split.map(decode)` written to `cache_file_name` (None: beside the split's files). datasets renames the file
    into place only when whole: a killed run leaves only a `tmp*` file, the next run's to remove (`data.cache_users`);
    a full (or read-only) disk is one line naming the folder, and leaves no `tmp*` (`own_temporary_files_removed`)."""
    folder = Path(cache_file_name).parent if cache_file_name else Path(split.cache_files[0]["filename"]).parent
    cache_users.hold_cache_folder(folder)  # a killed run's `tmp*` file there removed, this run's kept from others
    with writing_to(folder, "the decoded audio was not cached; make room, or set HF_DATASETS_CACHE to a folder "
                    "on another disk"), cache_users.own_temporary_files_removed(folder):
        return split.map(decode, cache_file_name=cache_file_name, **map_arguments)


def decoded_family(split, settings: list, features) -> str:
    """What a split's decodings share whatever its files' bytes and the decoder: its clips in order (`_clips_key`),
    the decoding `settings`, the decoded `features` and `DECODED_LAYOUT`."""
    from datasets.fingerprint import Hasher

    return Hasher.hash([_clips_key(split), *settings, features.to_dict(), DECODED_LAYOUT])


def _clips_key(split) -> str:
    """The split's clips as paths (absolute) and labels, in its rows' order, read from Arrow (no audio): a clip
    rewritten in place changes its `file_stat`, and so the split's fingerprint, but not this. Where a clip's audio
    is held as bytes in the dataset, its rows are not known by their paths: the stored split they are of
    (`_held_split_key`), or where that is not known, the split's own fingerprint (each decoding its own family)."""
    import pyarrow.compute as pc

    table = split.data.table
    column = table.column("audio")
    if not is_path_struct(column) or holds_bytes(column):
        return _held_split_key(split) or split._fingerprint
    paths, labels = pc.struct_field(column, "path"), table.column("label")
    if split._indices is not None:
        rows = split._indices.column(0)
        paths, labels = paths.take(rows), labels.take(rows)
    absolute = [path if not path or os.path.isabs(path) else os.path.abspath(path) for path in paths.to_pylist()]
    return hashlib.sha256(json.dumps([absolute, labels.to_pylist()], default=repr).encode()).hexdigest()


def _held_split_key(split) -> Optional[str]:
    """What names a split held as bytes across its dataset's versions (a clip's bytes changed, rows added), so that a
    new version's decoding supersedes the last (`clip_digests.held_bytes_key` tells them apart): the dataset it was
    loaded from (`clip_names.loaded_source`: its folder or Hub id), its folder in the cache (`<cache>/<dataset>`:
    the config id and version folders below it are named by the data files' times too) and configuration, the
    split's name, and which of its rows (`clip_names.stored_run`): all, a slice of them, or those its indices
    select. Every decoding of a Hub dataset's split was its own family (keyed by the split's fingerprint), and each
    change to the dataset left the last one for good. None (the fingerprint, as before) for a split that was not
    loaded from a dataset in this process (built in Python, held in memory), nor a run of a stored split's rows:
    two datasets never share a family, nor does `train[:50%]` with `train`. This machine's name too: copies of a
    clone at one path on several machines (or containers) sharing a cache have their own files' times, and each
    removed the other's decoding on every run (reviewer R4)."""
    source, run = loaded_source(split), stored_run(split)
    if source is None or run is None:
        return None
    whole = run == (0, split.info.splits[str(split.split)].num_examples)
    version = builder_version(split.cache_files[0]["filename"])  # <cache>/<dataset>/<config id>/<version>/<hash>
    place = version.parents[2] if version else Path(split.cache_files[0]["filename"]).parent
    rows = None if split._indices is None else hashlib.sha256(
        split._indices.column(0).to_numpy().astype("uint64").tobytes()).hexdigest()
    return hashlib.sha256(json.dumps(["held", source, socket.gethostname(), os.path.realpath(place),
                                      split.info.config_name, str(split.split), None if whole else run,
                                      rows]).encode()).hexdigest()


def supersede_earlier_decodings(family: str, decoded_file: str, what: str, content: str) -> int:
    """`decoded_file` (a decoding of `family`, shards as `cache_users.cached_files` finds them, of the clips' bytes
    `content`) recorded as its family's, used now by this decoder, and the family's other decodings that are
    superseded (`_superseded`) and that no live run holds removed, with their retried rows and the caches computed
    from them (`derived_files_of`: a probe's frozen features), said in one line; the files removed. A record that
    cannot be read or written, or a file that cannot be removed, leaves things as they were."""
    use = {"decoder": decoder_code(), "content": content, "used": time.time()}
    removed, freed = superseded_removed(FAMILIES_FOLDER, family, decoded_file, use, _decoding_files)
    if removed:
        logger.warning("data: removed %d file(s) (%.1f MB) of earlier decodings of the %s at these settings, "
                       "superseded by this one (its clips rewritten since, or unused for %d days), and of what was "
                       "computed from them (frozen features)", removed, freed / 2**20, what, UNUSED_DECODER_DAYS)
    return removed


def superseded_removed(records: str, family: str, cache_file: str, use: dict,
                       files_of: Callable[[str], list[str]]) -> tuple[int, int]:
    """`cache_file` (one of `family`'s caches) recorded in `$HF_DATASETS_CACHE/<records>/<family>.json` as used now
    (`use`: {"decoder": what made it, "content": what it was made from, "used": now}), and the family's other caches
    that are superseded (`_superseded`) removed (`files_of(cache)`: all its files) where no live run holds their
    folder: (files removed, their bytes). Nothing where `cache_file` was not written (datasets' caching off)."""
    import datasets

    if not cache_users.cached_files(cache_file):  # not written (datasets' caching turned off): nothing to record
        return 0, 0
    record = Path(datasets.config.HF_DATASETS_CACHE) / records / f"{family}.json"
    kept, removed, freed = {os.path.realpath(cache_file): use}, 0, 0
    for earlier, earlier_use in _read_record(record).items():
        if earlier in kept or not cache_users.cached_files(earlier):  # gone since: dropped from the record
            continue
        if _superseded(earlier_use, use):
            files, size = _removed_when_unused(earlier, files_of)
            removed, freed = removed + files, freed + size
        if cache_users.cached_files(earlier):  # still used, held by a live run, or not ours to remove
            kept[earlier] = earlier_use
    _write_record(record, kept)
    return removed, freed


def derived_cache_file(split, key: str) -> Optional[str]:
    """Where a cache computed from `split`'s decoded rows (a probe's frozen features) is written: beside the decoded
    table its rows are read from, named after it (`<table>-frozen-<key>.arrow`), so that the table's removal finds
    it (`derived_files_of`). The split handed on is rarely the table itself (its `error` column removed, a carved
    split's rows selected, failures stitched in), and a name of its own fingerprint, as before, named nothing that
    the decoding could be traced from. None for a split held in memory (nothing written)."""
    if not split.cache_files:
        return None
    table = Path(split.cache_files[0]["filename"])
    stem = re.sub(r"_[0-9]{5}_of_[0-9]{5}$", "", table.stem)  # a decoding written as shards: the table's name
    return str(table.with_name(f"{stem}{DERIVED_MARK}{key}{table.suffix}"))


def derived_files_of(decoded_file: str) -> list[str]:
    """The caches computed from the decoding `decoded_file` (`derived_cache_file`), and their shards."""
    table = Path(decoded_file)
    return sorted(glob.glob(f"{glob.escape(str(table.parent / table.stem))}{DERIVED_MARK}*{table.suffix}"))


def _decoding_files(decoded_file: str) -> list[str]:
    """Everything a decoding leaves: its table (or shards), its rows decoded again, the caches computed from it."""
    return cache_users.cached_files(decoded_file) + retried_files_of(decoded_file) + derived_files_of(decoded_file)


def _superseded(use: dict, now: dict) -> bool:
    """Whether an earlier decoding, last used as `use` says, is superseded by the one used `now`: of the same
    decoder but other bytes of the clips (rewritten since: no run can read it again), or unused for
    `UNUSED_DECODER_DAYS` (another decoder's; or the same clips' bytes decoded by another route: a table decoded
    whole for its carved splits and the same table read alone, `evaluate --split train`, another `--cache_dir`,
    each valid, and removed in turn by the other on every run before this was asked: reviewer R1)."""
    rewritten = use.get("decoder") == now["decoder"] and use.get("content") != now["content"]
    return rewritten or now["used"] - use.get("used", 0) > UNUSED_DECODER_DAYS * 86400


def _removed_when_unused(cache_file: str, files_of: Callable[[str], list[str]]) -> tuple[int, int]:
    """`files_of(cache_file)` removed, when its folder can be written and no other live hfspeech run holds it:
    (files removed, their bytes)."""
    folder = Path(cache_file).parent
    if cache_users.is_users_folder(folder) or cache_users.cache_folder_problem(folder) is not None:
        return 0, 0  # a folder the user saved; a read-only cache, never written to
    removed, size = 0, 0
    with cache_users.held_alone(folder) as alone:
        for path in files_of(cache_file) if alone else []:
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: left
                length = os.stat(path).st_size
                os.unlink(path)
                removed, size = removed + 1, size + length
    return removed, size


def _read_record(record: Path) -> dict[str, dict]:
    """The decodings `record` lists ({absolute path: {"decoder": its decoder_code, "used": when last used}}), or none
    where it is missing or unreadable (then rewritten)."""
    try:
        listed = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(listed, dict):
        return {}
    return {path: use for path, use in listed.items()
            if isinstance(use, dict) and isinstance(use.get("used"), (int, float))}


def _write_record(record: Path, decodings: dict[str, dict]) -> None:
    """`decodings` written to `record` whole: a file beside it renamed in, so that a reader never sees half of it.
    Nothing where the folder cannot be written (a read-only cache); two runs writing one family's record at once
    keep one's list, and a decoding left out of it is only never removed, as before records."""
    if cache_users.cache_folder_problem(record.parent) is not None:
        return
    partial = record.with_name(f".{record.stem}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(decodings), encoding="utf-8")
        os.replace(partial, record)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
