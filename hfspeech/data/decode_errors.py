"""The bad files a decoding pass met, said in one error: the first named, and how many more there are.

`data.prepare` decodes every split with each bad file kept as a row carrying its problem, and only then raises,
unless the run skips them (`--skip_bad_files`). Raised from inside the decoding pass, the error named the first file
it met and no other: 500 bad files took 500 runs, each decoding all the clips again to find the next one.
A clip held as bytes is named by its stored file name, split and row (`bad_clip_name`): a Hub dataset's rows may all
be `audio.flac`, and the name alone found none of them.
"""

from __future__ import annotations

import os
from typing import Optional

from hfspeech.data.audio import AudioFileError
from hfspeech.data.clip_names import bytes_clip_name, stored_run
from hfspeech.data.columns import column_values

SKIP_HINT = "--skip_bad_files skips such files and lists them in data_report.json"


def with_skip_hint(error: AudioFileError) -> AudioFileError:
    """`error` saying how to go on without the file (`SKIP_HINT`), for a command that has `--skip_bad_files`."""
    return AudioFileError(error.path, f"{error.problem} ({SKIP_HINT})")


def raise_first_bad(decoded, whole) -> None:
    """An `AudioFileError` naming the first bad file of `decoded` (rows with an `error`) and counting the others of
    `whole`, the table it was decoded with (`decoded` itself, or the table it selects rows of); nothing where
    `decoded` has none. `whole`'s cache is kept: the failure may be the decoder's (torchcodec missing), and the
    next run decodes only the failed rows again (`data.decode_retry`); removed, the next run decoded every good
    clip again (50,000 for one bad file)."""
    bad = next((row for row, error in enumerate(column_values(decoded, "error")) if error), None)
    if bad is None:
        return
    named = bad_clip_name(decoded, bad)
    raise with_skip_hint(AudioFileError(named, decoded[bad]["error"] + others_bad(whole, named)))


def others_bad(whole, named: str) -> str:
    """`; and N more bad file(s) in this data: a, b, c and 2 more` where the decoded `whole` table holds bad files
    besides `named`, else nothing."""
    bad = [row for row, error in enumerate(column_values(whole, "error")) if error]
    others = [name for name in bad_clip_names(whole, bad[:4]) if name != named][:3]
    if not others:
        return ""
    unnamed = len(bad) - 1 - len(others)
    rest = f" and {unnamed} more" if unnamed else ""
    return f"; and {len(bad) - 1} more bad file(s) in this data: {', '.join(others)}{rest}"


def bad_clip_name(decoded, row: int) -> str:
    """How a bad row of the decoded table `decoded` is named in errors (and `data_report.json`): its path, and for a
    clip held as bytes under a stored file name (a path that names no file: not absolute) its split and row in the
    stored split (`clip_names.bytes_clip_name`), where that row is known (`_stored_row`); a clip named by row
    already (`<audio bytes without a file name: ...>`) as it is."""
    return bad_clip_names(decoded, [row])[0]


def bad_clip_names(decoded, rows: list[int]) -> list[str]:
    """`bad_clip_name` of each of `rows`, with where the table sits in its stored split (`clip_names.stored_run`,
    which reads the Arrow file's footer: 37 ms on 400 MB) found once for them all, not once a bad row."""
    run: list = []  # found at the first clip that needs it
    names = []
    for row in rows:
        path = decoded[row]["path"]
        if not path or path.startswith("<") or os.path.isabs(path):
            names.append(path)
            continue
        run = run or [stored_run(decoded)]
        stored = _stored_row(decoded, row, run[0])
        names.append(path if stored is None else bytes_clip_name(path, str(decoded.split), stored))
    return names


def _stored_row(decoded, row: int, run: Optional[tuple[int, int]]) -> Optional[int]:
    """`row` of `decoded` as a row of the stored split it was decoded from, through its indices (rows selected) and
    where its table sits in that split (`run`, `clip_names.stored_run`); None where that is not known (a split decoded
    alone has its own table: the rows it selected are not known from it)."""
    if run is None:
        return None
    return run[0] + (row if decoded._indices is None else decoded._indices.column(0)[row].as_py())
