"""What the machine refused, not the input, said in one line by the CLI's catch-all (`hfspeech.cli._run`) where a
library raised it as a bare `OSError` deep in its own code, or ran out of memory. Imported with `hfspeech.cli` (it
imports only `hfspeech.errors` at the top): the catch-all of a run out of memory must not import a module first,
which raised a second MemoryError there."""

from __future__ import annotations

import errno
import os
import re
from typing import Optional

from hfspeech.errors import HfspeechError

# torch's CPU allocator: `[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you
# tried to allocate 23347200 bytes. Error code 12 (Cannot allocate memory)`; CUDA's `torch.OutOfMemoryError`: `CUDA out
# of memory. Tried to allocate 20.00 MiB (GPU 0; ...)`
CPU_ALLOCATION = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")
GPU_ALLOCATION = re.compile(r"Tried to allocate ([\d.]+ [KMGT]?i?B)")
# what lowers the memory a command takes, by command (its real flags: `hfspeech COMMAND --help`)
LESS_MEMORY = {"train": "lower --per_device_train_batch_size / --per_device_eval_batch_size, or use "
                        "--dataloader_num_workers 0",
               "evaluate": "lower --batch_size", "predict": "lower --batch_size"}
LESS_MEMORY.update({"cross-validate": LESS_MEMORY["train"], "distill": LESS_MEMORY["train"]})
ANY_LESS_MEMORY = ("lower --per_device_train_batch_size / --per_device_eval_batch_size (or evaluate's and predict's "
                   "--batch_size), or use --dataloader_num_workers 0")


def out_of_memory(error: BaseException, command: str = "") -> Optional[HfspeechError]:
    """Memory the machine refused, as one line with the flags of `command` that lower it: Python's `MemoryError`,
    torch's CPU allocator's `RuntimeError` and CUDA's `torch.OutOfMemoryError` (told by its type's name: torch is not
    imported here), the error itself or one it was raised from or while handling. Each was a traceback with no hint.
    Imports nothing: it runs first in the catch-all, with the memory still short. None for any other error."""
    while error is not None:
        found = CPU_ALLOCATION.search(str(error)) if isinstance(error, RuntimeError) else None
        if found or isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
            break
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if error is None:
        return None
    on_gpu = type(error).__name__ == "OutOfMemoryError"
    gpu = on_gpu and GPU_ALLOCATION.search(str(error))
    size = in_megabytes(int(found.group(1))) if found else gpu.group(1) if gpu else ""
    tried = f" (tried to allocate {size} more)" if size else ""
    return HfspeechError(f"out of {'GPU ' if on_gpu else ''}memory{tried}; {LESS_MEMORY.get(command, ANY_LESS_MEMORY)}")


def in_megabytes(size: int) -> str:
    """`22.3 MB` (MiB, as torch counts), `37.3 GB` from 1,000 MB on."""
    megabytes = size / 2 ** 20
    return f"{megabytes:.1f} MB" if megabytes < 1000 else f"{megabytes / 1024:.1f} GB"


def no_locks(error: BaseException) -> Optional[HfspeechError]:
    """A lock the file system refused (ENOLCK: an NFS mount without its lock daemon, or mounted `nolock`), as one line
    naming the folder (the error's file, else the datasets cache, where datasets' `FileLock` takes one before it
    reads any data set) and the way out. It was filelock's traceback from datasets' builder: filelock falls back to
    a soft lock only where there is no `flock` at all (ENOSYS). None for any other error."""
    found = os_error_in(error, errno.ENOLCK)
    if found is None:
        return None
    from hfspeech.path_names import shown_name

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
