"""What the machine refused, not the input, in one line: memory short, a DataLoader worker killed, a full or
read-only disk, a path this user may not read or write (`file_owners.access_refusal`, naming another user's file's
owner), no home folder, no locks, no temporary folder, an extra's optional package missing -- where a library raised
it deep in its own code. The CLI's catch-all says it (`cli.system_errors.machine_refusal`, which adds a missing
system library), and so does a run of several processes where one process alone meets it
(`training.distributed.agreed`: every process stops with the line, not with gloo's "Connection closed by peer"): the
wording lives here, below both.

Bottom layer: imports `errors`, `cache_folders`, `file_owners`, `temporary_folder` (and `path_names` when a lock is
refused), all loaded with `hfspeech.cli` already: the catch-all of a run out of memory must not import a module
first, which raised a second MemoryError there.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Optional

from hfspeech.cache_folders import HFSPEECH, HUGGING_FACE, NoHomeError, homeless_message
from hfspeech.errors import HfspeechError, cannot_write, disk_write_failure, first_in_chain, near_causes
from hfspeech.file_owners import access_refusal  # (serve's too: bottom, so that serve need not import cli)
from hfspeech.temporary_folder import no_temporary_folder

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
    error = first_in_chain(error, lambda each: isinstance(each, MemoryError) or type(each).__name__ ==
                           "OutOfMemoryError" or isinstance(each, RuntimeError) and CPU_ALLOCATION.search(str(each)))
    if error is None:
        return None
    found = CPU_ALLOCATION.search(str(error)) if isinstance(error, RuntimeError) else None
    on_gpu = type(error).__name__ == "OutOfMemoryError"
    gpu = on_gpu and GPU_ALLOCATION.search(str(error))
    size = in_megabytes(int(found.group(1))) if found else gpu.group(1) if gpu else ""
    tried = f" (tried to allocate {size} more)" if size else ""
    return HfspeechError(f"out of {'GPU ' if on_gpu else ''}memory{tried}; {LESS_MEMORY.get(command, ANY_LESS_MEMORY)}")


WORKER_LOST = "DataLoader worker (pid"  # torch's words for a worker that died under it


def worker_lost(error: Optional[BaseException]) -> Optional[HfspeechError]:
    """A DataLoader worker the system killed (`DataLoader worker (pid 123) is killed by signal: Killed.`: a memory
    cap; `Bus error`: /dev/shm too small; `... exited unexpectedly`), torch's words and the way out in one line: it
    was a traceback of torch's internals. None for any other error."""
    error = first_in_chain(error, lambda each: isinstance(each, RuntimeError) and str(each).startswith(WORKER_LOST))
    if error is None:
        return None
    said = str(error).split(". ")[0].rstrip(".")
    return HfspeechError(f"{said}: a worker has memory of its own and hands its batches over in /dev/shm; lower "
                         "--dataloader_num_workers (0: none), or give the machine more memory (Docker: --memory, "
                         "--shm-size)")


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
    return first_in_chain(error, lambda each: isinstance(each, OSError) and each.errno == number)


def machine_refusal(error: Exception, command: str) -> Optional[HfspeechError]:
    """The one line for what the machine refused where a library raised it: memory (first: it imports nothing, with
    memory still short), an extra's package missing, a full or read-only disk, an access refused, no home, no locks,
    no temporary folder; None for any other error (a bug), which stays a traceback. `command` names the flags that
    lower the memory taken, and the command a missing package's line names."""
    if (said := memory_or_scratch(error, command) or missing_extra(error, command)) is not None:
        return said
    if (reason := disk_write_failure(error)) is not None:
        return cannot_write(getattr(error, "filename", None), reason, "a disk it writes to is full or read-only; "
                            "make room, or write elsewhere, and run again")
    return access_refusal(error) or homeless(error) or no_locks(error)


def memory_or_scratch(error: Exception, command: str) -> Optional[HfspeechError]:
    """Memory short (first: it imports nothing, with memory still short) or no temporary folder (a FileNotFoundError:
    before the disk's reasons); the CLI's catch-all then looks for a missing package before the rest."""
    if (memory := out_of_memory(error, command) or worker_lost(error)) is not None:
        error.__traceback__ = None  # its frames (and the tensors they hold) go before the line is written
        return memory
    return no_temporary_folder(error)


# the optional packages behind hfspeech's extras (`pip install "hfspeech[export,serve]"`); the CLI's too
EXTRA_OF_PACKAGE = {"optimum": "export", "onnxruntime": "export", "onnx": "export",
                    "starlette": "serve", "uvicorn": "serve", "prometheus_client": "serve", "websockets": "serve"}


def missing_extra(error: BaseException, command: str) -> Optional[HfspeechError]:
    """An optional package missing (`error` a ModuleNotFoundError, or raised from or while handling one) as the one
    line naming the extra to install: the CLI's (`cli.extras.missing_extra`), and every process's where one process
    of a launched run meets it (`training.distributed.agreed`: it was "an unexpected error" there); None for anything
    else."""
    for cause in near_causes(error):
        name = getattr(cause, "name", None) if isinstance(cause, ModuleNotFoundError) else None
        extra = EXTRA_OF_PACKAGE.get((name or "").split(".")[0])
        if extra:
            return HfspeechError(f"hfspeech {command} needs {name}, which could not be imported: install "
                                 f"hfspeech's {extra!r} extra (pip install \"hfspeech[{extra}]\", with the project's "
                                 f"constraints.txt for the tested versions)")
    return None


def homeless(error: BaseException) -> Optional[NoHomeError]:
    """A library's `Path.home()` without a home (`RuntimeError: Could not determine home directory.`) as the one
    line `cache_folders` says it in; None for any other error."""
    if isinstance(error, RuntimeError) and str(error).startswith("Could not determine home directory"):
        return NoHomeError(homeless_message([HUGGING_FACE, HFSPEECH]))
    return None
