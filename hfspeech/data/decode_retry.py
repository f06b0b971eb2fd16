"""A decoded table read back from its cache has its failed rows decoded again, and only those.

`data.prepare` keeps each bad file as a row carrying its `error` in the split's decoded cache. A failure may be the
decoder's rather than the file's (torchcodec missing, a codec added since): read back, it stayed a failure for good
with `--skip_bad_files`, and a run that stopped on it removed the whole cache, so that the next run decoded every
good clip again (50,000 clips for one bad file). The cache is kept now, and a run that reads it back decodes its
failed rows again, in memory: each that decodes now takes its place, the rows' order and the table's fingerprint stay
as they were (what is cached under that fingerprint is that table's audio), and the cache file is not written again.
A file still bad is decoded once more by every run that reads the table, which costs what its failure costs.

Bottom layer: imports `datasets` and `data.columns` only.
"""

from __future__ import annotations

import logging

from datasets import Dataset, concatenate_datasets
from datasets.fingerprint import Hasher

from hfspeech.data.columns import column_values

logger = logging.getLogger("hfspeech.data")

# In the name of every decoded cache: a change to what a decoded row holds names new caches by changing it
DECODED_LAYOUT = "input_values,length,path,error,label/1"


def decoded_fingerprint(split: Dataset, settings: list, features) -> str:
    """The fingerprint of `split` decoded with `settings` into `features`, named by hfspeech rather than by datasets'
    hash of the map's arguments: known before the map, so that a run tells a warm cache (read even where it cannot
    write, its failures retried) from a cold one."""
    return Hasher.hash([split._fingerprint, *settings, features.to_dict(), DECODED_LAYOUT])


def with_failures_retried(split: Dataset, decoded: Dataset, decode, features) -> Dataset:
    """`decoded` (`split` read back from the cache) with each row whose `error` is set decoded again by `decode`
    (one `map` over those rows of `split`, in memory): the rows that decode now replace their failures in place."""
    failed = [row for row, error in enumerate(column_values(decoded, "error")) if error]
    if not failed:
        return decoded
    again = split.select(failed, keep_in_memory=True).map(
        decode, remove_columns=split.column_names, features=features, keep_in_memory=True,
        desc=f"decoding again the {len(failed)} clip(s) that failed when the cache was written")
    mended = [row for row, error in enumerate(column_values(again, "error")) if not error]
    if not mended:
        return decoded
    logger.warning("data: %d of the %d clip(s) that failed to decode when the cache was written decode now (e.g. %s)",
                   len(mended), len(failed), again[mended[0]]["path"])
    order = list(range(len(decoded)))
    for row in mended:
        order[failed[row]] = len(decoded) + row
    stitched = concatenate_datasets([decoded, again]).select(order, keep_in_memory=True)
    stitched._fingerprint = decoded._fingerprint  # the same table of clips, its failures decoded
    return stitched
