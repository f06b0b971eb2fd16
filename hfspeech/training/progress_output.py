"""Progress bars in a training log: drawn on a terminal, left out of a file.

The Trainer's tqdm bars and datasets' map/filter/save bars redraw themselves with carriage returns; where
stderr is a file (`2> train.log`, nohup, CI) every redraw became a line of the log. hfspeech's own bars follow
one rule (`cli.flags.progress_wanted`: shown when stderr is a terminal); training follows it too: with stderr
not a terminal and `--disable_tqdm` not given, `disable_tqdm` defaults to True. The Trainer's loss and metric
dicts (every `--logging_steps` / epoch) are still printed, on stdout, by its `PrinterCallback`.
`--disable_tqdm False` keeps the bars in the log, as before.

datasets' bars follow `disable_tqdm` for the run only (`datasets_bars_follow`), then are as they were: a
Python caller's own `datasets` work after `run_training` keeps its bars. `HF_DATASETS_DISABLE_PROGRESS_BARS`,
when set, is datasets' to decide and left alone.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

DATASETS_BARS_VARIABLE = "HF_DATASETS_DISABLE_PROGRESS_BARS"


def stderr_is_terminal() -> bool:
    """Whether bars on stderr are seen being redrawn (no stderr at all, as under pythonw, is not a terminal)."""
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


def default_bars_for_log(training_args, given: set[str]) -> None:
    """`disable_tqdm` True where stderr is not a terminal, unless `--disable_tqdm` was given (`given`: the names
    of the flags on the command line and in flag files)."""
    if "disable_tqdm" not in given and not stderr_is_terminal():
        training_args.disable_tqdm = True


@contextmanager
def datasets_bars_follow(disable_tqdm: bool) -> Iterator[None]:
    """datasets' progress bars off while the block runs when `disable_tqdm`; as they were afterwards."""
    import datasets

    if not disable_tqdm or datasets.are_progress_bars_disabled() or DATASETS_BARS_VARIABLE in os.environ:
        yield
        return
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.enable_progress_bars()
