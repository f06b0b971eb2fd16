"""A decoded table read back from its cache has its failed rows decoded again, and only those.

`data.prepare` keeps each bad file as a row carrying its `error` in the split's decoded cache. A failure may be the
decoder's rather than the file's (torchcodec missing, a codec added since): read back, it stayed a failure for good
with `--skip_bad_files`, and a run that stopped on it removed the whole cache, so that the next run decoded every
good clip again (50,000 clips for one bad file). The cache is kept now, and a run that reads it back decodes its
failed rows again: each that decodes now takes its place, the rows' order and the table's fingerprint stay as they
were (what is cached under that fingerprint is that table's audio). The rows decoded again are cached beside the
table (`hfspeech-retried-*.arrow`, named by the table's file and the rows), so the next run reads them from disk;
held in memory, every later run decoded them all again (a whole table once decoded without its codec). Only the
failures of that file are tried once more, in memory: a file still bad costs each run what its failure costs.

Bottom layer: imports `datasets` and `data.columns`, `data.cache_users` only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

from datasets import Dataset, concatenate_datasets
from datasets.fingerprint import Hasher

from hfspeech.data import cache_users
from hfspeech.data.columns import column_values

logger = logging.getLogger("hfspeech.data")

# In the name of every decoded cache: a change to what a decoded row holds names new caches by changing it
DECODED_LAYOUT = "input_values,length,path,error,label/1"
RETRIED_PREFIX = "hfspeech-retried-"


def decoded_fingerprint(split: Dataset, settings: list, features) -> str:
    """The fingerprint of `split` decoded with `settings` into `features`, named by hfspeech rather than by datasets'
    hash of the map's arguments: known before the map, so that a run tells a warm cache (read even where it cannot
    write, its failures retried) from a cold one."""
    return Hasher.hash([split._fingerprint, *settings, features.to_dict(), DECODED_LAYOUT])


def retried_cache_name(decoded: Dataset, failed: list[int]) -> Optional[str]:
    """Where `decoded`'s `failed` rows, decoded again, are cached: beside its cache file, named by that file and the
    rows; None where it has no file."""
    if not decoded.cache_files:
        return None
    table = Path(decoded.cache_files[0]["filename"])
    return str(table.parent / f"{RETRIED_PREFIX}{Hasher.hash([table.name, failed])}.arrow")


def with_failures_retried(split: Dataset, decoded: Dataset, decode_into: Callable[[Dataset, Optional[str]], Dataset],
                          may_write: bool = True) -> Dataset:
    """`decoded` (`split` read back from the cache) with each row whose `error` is set decoded again: the rows of
    `split` given to `decode_into(rows, cache_file_name)` (None: in memory), written beside the table where
    `may_write` (`retried_cache_name`); the rows that decode now replace their failures in place."""
    failed = [row for row, error in enumerate(column_values(decoded, "error")) if error]
    if not failed:
        return decoded
    name = retried_cache_name(decoded, failed) if may_write else None
    was_cached = name is not None and bool(cache_users.cached_files(name))
    if name is not None and not was_cached and cache_users.cache_folder_problem(Path(name).parent) is not None:
        name = None  # none there, and none can be written (a read-only cache): in memory
    rows = split.select(failed, keep_in_memory=True)
    again = decode_into(rows, name)
    if was_cached:  # read back: its own failures tried once more, in memory (a decoder mended since)
        again = with_failures_retried(rows, again, decode_into, may_write=False)
    mended = [row for row, error in enumerate(column_values(again, "error")) if not error]
    if not mended:
        return decoded
    if not was_cached:
        logger.warning("data: %d of the %d clip(s) that failed to decode when the cache was written decode now "
                       "(e.g. %s)", len(mended), len(failed), again[mended[0]]["path"])
    order = list(range(len(decoded)))
    for row in mended:
        order[failed[row]] = len(decoded) + row
    stitched = concatenate_datasets([decoded, again]).select(order, keep_in_memory=True)
    stitched._fingerprint = decoded._fingerprint  # the same table of clips, its failures decoded
    return stitched
