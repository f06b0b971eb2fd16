"""Whether progress bars are drawn: on a terminal, yes; into a file (`2> run.log`, nohup, CI), no.

Each redraw of a tqdm bar is a carriage return; where stderr is a file, every redraw became a line of the log.
One rule for every command and stage (`cli.flags.progress_wanted`, training's `disable_tqdm` default,
distillation's teacher bar, `hfspeech evaluate`): it lives here, at the bottom stage, which each of them may
import, and imports nothing heavy (`datasets` only inside `datasets_bars_follow`), so `--help` stays fast.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

DATASETS_BARS_VARIABLE = "HF_DATASETS_DISABLE_PROGRESS_BARS"


def stderr_is_terminal() -> bool:
    """Whether bars on stderr are seen being redrawn (no stderr at all, as under pythonw, is not a terminal)."""
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


def progress_wanted(flag: Optional[bool]) -> bool:
    """A `--progress` / `--no_progress` (or a Python `progress=`) as given; not given (None), a bar only when
    stderr is a terminal (none in a log)."""
    return stderr_is_terminal() if flag is None else bool(flag)


@contextmanager
def datasets_bars_follow(disable: bool) -> Iterator[None]:
    """datasets' progress bars off while the block runs when `disable`; as they were afterwards, so a Python
    caller's own `datasets` work keeps its bars. `HF_DATASETS_DISABLE_PROGRESS_BARS`, when set, is datasets'
    to decide and left alone."""
    import datasets

    if not disable or datasets.are_progress_bars_disabled() or DATASETS_BARS_VARIABLE in os.environ:
        yield
        return
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.enable_progress_bars()
