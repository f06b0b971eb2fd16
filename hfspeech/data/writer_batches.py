"""How many decoded clips `data.prepare` holds before `datasets.map` writes them to Arrow (its `writer_batch_size`).

datasets holds 1000 rows a write by default; decoded audio is large, so a batch is 100 clips, and fewer where the
split's largest file may decode to more than a share of `MAX_BATCH_BYTES`. Sizes come from the files (`stat`) and
the Arrow column of bytes, never from reading the audio.
"""

from __future__ import annotations

import os
import stat
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc

WRITER_BATCH_SIZE = 100  # clips per Arrow write while preparing (fewer for long files: `writer_batch_size`)
MAX_BATCH_BYTES = 256 * 2**20  # decoded audio a batch may hold before it is written
DECODED_BYTES_PER_FILE_BYTE = 8  # float32 at the model's rate from a file's bytes: 2 for 16-bit WAV, ~4-16 for MP3


def writer_batch_size(split, file_sizes: Optional[dict[str, int]] = None) -> int:
    """`WRITER_BATCH_SIZE`, or fewer clips when the split's largest file may decode to more than a share of
    `MAX_BATCH_BYTES`: a batch of 100 ten-minute files held 3.8 GB before it was written (12 of them: a peak of
    1.5 GB). Sizes come from the files (`stat`) and the Arrow column of bytes, never from reading the audio.
    `file_sizes` ({path: bytes}): the sizes stat-ed already, given the new ones (splits of one table share files)."""
    column = split.data.table.column("audio")  # every row of the table behind the split: an upper bound
    if not pa.types.is_struct(column.type):
        return WRITER_BATCH_SIZE
    held = pc.max(pc.binary_length(pc.struct_field(column, "bytes"))).as_py() or 0
    paths = {path for path in pc.struct_field(column, "path").to_pylist() if path}
    sizes = file_sizes if file_sizes is not None else {}
    sizes.update({path: _file_size(path) for path in paths if path not in sizes})
    on_disk = max((sizes[path] for path in paths), default=0)
    largest = max(held, on_disk) * DECODED_BYTES_PER_FILE_BYTE
    return max(1, min(WRITER_BATCH_SIZE, MAX_BATCH_BYTES // max(1, largest)))


def _file_size(path: str) -> int:
    """A regular file's size from one `stat` (`isfile` then `getsize` made two), 0 for anything else."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # what `os.path.isfile` answers False to
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
