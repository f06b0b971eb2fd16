"""What the machine refused, not the input, said in one line by the CLI's catch-all (`hfspeech.cli._run`) where a
library raised it as a bare `OSError` deep in its own code."""

from __future__ import annotations

import errno
import os
from typing import Optional

from hfspeech.errors import HfspeechError
from hfspeech.path_names import shown_name


def no_locks(error: BaseException) -> Optional[HfspeechError]:
    """A lock the file system refused (ENOLCK: an NFS mount without its lock daemon, or mounted `nolock`), as one line
    naming the folder (the error's file, else the datasets cache, where datasets' `FileLock` takes one before it
    reads any data set) and the way out. It was filelock's traceback from datasets' builder: filelock falls back to
    a soft lock only where there is no `flock` at all (ENOSYS). None for any other error."""
    found = os_error_in(error, errno.ENOLCK)
    if found is None:
        return None
    if found.filename is not None:
        folder = os.fsdecode(found.filename)
    else:
        import datasets

        folder = datasets.config.HF_DATASETS_CACHE
    return HfspeechError(f"{shown_name(folder)}: {found.strerror or os.strerror(errno.ENOLCK)} (this file system "
                         "takes no locks: a network share without a lock service?); put the datasets cache on a local "
                         "disk, e.g. HF_DATASETS_CACHE=/tmp/hf-datasets")


def os_error_in(error: Optional[BaseException], number: int) -> Optional[OSError]:
    """The `OSError` with errno `number` that `error` is, or was raised from or while handling; None if none is."""
    while error is not None and not (isinstance(error, OSError) and error.errno == number):
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return error
