"""The bad files a decoding pass met, said in one error: the first named, and how many more there are.

`data.prepare` decodes every split with each bad file kept as a row carrying its problem, and only then raises,
unless the run skips them (`--skip_bad_files`). Raised from inside the decoding pass, the error named the first file
it met and no other: 500 bad files took 500 runs, each decoding all the clips again to find the next one.
"""

from __future__ import annotations

from hfspeech.data.audio import AudioFileError
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
    named = decoded[bad]["path"]
    raise with_skip_hint(AudioFileError(named, decoded[bad]["error"] + others_bad(whole, named)))


def others_bad(whole, named: str) -> str:
    """`; and N more bad file(s) in this data: a, b, c and 2 more` where the decoded `whole` table holds bad files
    besides `named`, else nothing."""
    bad = [row for row, error in enumerate(column_values(whole, "error")) if error]
    others = [path for path in column_values(whole.select(bad[:4]), "path") if path != named][:3]
    if not others:
        return ""
    unnamed = len(bad) - 1 - len(others)
    rest = f" and {unnamed} more" if unnamed else ""
    return f"; and {len(bad) - 1} more bad file(s) in this data: {', '.join(others)}{rest}"
