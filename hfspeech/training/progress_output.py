"""Progress bars in a training log: drawn on a terminal, left out of a file.

The Trainer's tqdm bars and datasets' map/filter/save bars redraw themselves with carriage returns; where
stderr is a file (`2> train.log`, nohup, CI) every redraw became a line of the log. hfspeech's own bars follow
one rule (`data.progress_bars.stderr_is_terminal`); training follows it too: with stderr not a terminal and
`--disable_tqdm` not given, `disable_tqdm` defaults to True. The Trainer's loss and metric dicts (every
`--logging_steps` / epoch) are still printed, on stdout, by its `PrinterCallback`. `--disable_tqdm False` keeps
the bars in the log, as before.

datasets' bars follow `disable_tqdm` for the run only (`data.progress_bars.datasets_bars_follow`), then are as
they were.
"""

from __future__ import annotations

from hfspeech.data.progress_bars import stderr_is_terminal


def default_bars_for_log(training_args, given: set[str]) -> None:
    """`disable_tqdm` True where stderr is not a terminal, unless `--disable_tqdm` was given (`given`: the names
    of the flags on the command line and in flag files)."""
    if "disable_tqdm" not in given and not stderr_is_terminal():
        training_args.disable_tqdm = True
