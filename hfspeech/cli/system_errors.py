"""What the machine refused, not the input, said in one line by the CLI's catch-all (`hfspeech.cli._run`,
`machine_refusal`) where a library raised it deep in its own code: an optional package missing, and everything
`hfspeech.machine_refusals` words (memory short, a full or read-only disk, a path this user may not read or write, no
home folder, no locks). The wording lives there, below training, for a run of several processes to say the same
line on every process (`training.distributed.agreed`), a missing extra's package among them (`cli.extras` adds a
missing system library's).
Imported with `hfspeech.cli`, and importing only what that has loaded already: the catch-all of a run out of memory
must not import a module first, which raised a second MemoryError there."""

from __future__ import annotations

from typing import Optional

from hfspeech.errors import HfspeechError
from hfspeech.machine_refusals import homeless, no_locks, out_of_memory, worker_lost  # noqa: F401 (their old home)
from hfspeech.machine_refusals import machine_refusal as refusal_said_below_the_cli, memory_or_scratch


def machine_refusal(error: Exception, command: str) -> Optional[HfspeechError]:
    """The one line for what the machine refused where a library raised it (`machine_refusals.machine_refusal`:
    memory first, with memory still short), or an optional package missing; None for any other error, which stays a
    traceback."""
    if (said := memory_or_scratch(error, command)) is not None:
        return said
    from hfspeech.cli.extras import missing_extra

    return missing_extra(error, command) or refusal_said_below_the_cli(error, command)  # (a chained one: as before)
