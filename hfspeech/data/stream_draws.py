"""Which draws a streamed training clip gets: its crop and augmentation from (seed, epoch, the clip's position).

A streamed batch has no row index, and the streamed clips used to draw one after another from a generator per
(seed, DataLoader worker) that was never told the epoch: a run resumed in a later pass started that generator
again, so it cropped and augmented other windows than the uninterrupted run (a tiny CNN ended 0.007 per weight
away), and the clip's draws depended on which worker read it and what that worker read before. Now every
example carries its position and the pass (`training.streaming.TrainingStream` adds `epoch`, read from the
stream, whose epoch `datasets` shares with persistent DataLoader workers), and the collator draws each clip
from those alone, through the map-style path's `RowDraw` (`data.transforms.TrainTransform`).

The position: a local index's row (in the seeded permutation, `data.streaming`), which no shuffle buffer,
worker split or resume changes; a Hub stream has no stable row number (its rows are counted in the shuffled
shard order of each worker), so a clip is placed by a hash of its bytes, or of its path when it has none.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from hfspeech.data.transforms import RowDraw

ROW_COLUMN = "row"  # a local index's row, added to each streamed example (`data.streaming._index_rows`)
EPOCH_KEY = "epoch"  # the pass the example was read in (`training.streaming.TrainingStream`)
# A Hub stream's `reference_key`, added to each example where it is read (`data.stream_rows.AudioReference`): the
# held-out filter and the clip's position both need it, and each computed it again, hashing the clip's bytes twice.
KEY_COLUMN = "clip_key"


def reference_key(audio: dict[str, Any]) -> str:
    """What identifies a streamed clip: a hash of its bytes, or its path when it has none (a file on disk).

    Not the path first: Hub datasets often give many rows the same file name (`audio.wav`, or the name of
    a file in each speaker's folder), and a held-out clip's name then removed all of them from training."""
    if audio.get("bytes"):
        return "sha1:" + hashlib.sha1(audio["bytes"]).hexdigest()
    return str(audio.get("path"))


def clip_key(example: dict[str, Any]) -> str:
    """The example's `reference_key`: the one its stream computed (`KEY_COLUMN`), else computed now."""
    key = example.get(KEY_COLUMN)
    return key if key is not None else reference_key(example["audio"])


def clip_position(example: dict[str, Any]) -> RowDraw:
    """The example's stable position: its index row, else 60 bits of a hash of its `reference_key`."""
    if example.get(ROW_COLUMN) is not None:
        return RowDraw(int(example[ROW_COLUMN]))
    digest = hashlib.sha1(clip_key(example).encode("utf-8")).digest()
    return RowDraw(int.from_bytes(digest[:8], "big") >> 4)


def epoch_of_batch(examples: list[dict[str, Any]]) -> Optional[int]:
    """The pass a batch was read in, when the stream said it (a DataLoader batch never spans two passes)."""
    epoch = examples[0].get(EPOCH_KEY) if examples else None
    return None if epoch is None else int(epoch)
