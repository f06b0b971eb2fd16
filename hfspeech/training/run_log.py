"""The run's log: on stderr at INFO, as transformers' example scripts set it up, with transformers' warnings shown
and other libraries' INFO chatter left out. `training.run.setup_training` sets it up first;
`training.command_line.process_state_kept` puts the process's logging back when the run ends.
"""

from __future__ import annotations

import logging
import os

import transformers


def default_transformers_verbosity() -> None:
    """transformers' warnings shown during training, unless the user set TRANSFORMERS_VERBOSITY (e.g. error)."""
    if not os.environ.get("TRANSFORMERS_VERBOSITY"):
        transformers.utils.logging.set_verbosity_warning()


QUIET_LIBRARIES = ("matplotlib",)  # INFO lines about themselves: "generated new fontManager" in every fresh container


def log_to_stderr() -> None:
    """The run's log on stderr at INFO, as transformers' scripts set it up (`basicConfig`: only where the process has
    no logging of its own). Libraries without a level of their own log INFO through it too: `QUIET_LIBRARIES`' INFO
    lines are left out (their warnings stay), as transformers' and datasets' are by their own verbosity."""
    root = logging.getLogger()
    had_handlers = bool(root.handlers)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if not had_handlers:  # the handler `process_state_kept` takes off again, and its filter with it
        root.handlers[0].addFilter(lambda record: record.levelno >= logging.WARNING
                                   or record.name.partition(".")[0] not in QUIET_LIBRARIES)

