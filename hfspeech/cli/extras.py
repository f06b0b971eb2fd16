"""The optional packages behind a command, named in one line where one is missing.

hfspeech installs as `pip install "hfspeech[export,serve]"` (scripts/setup.sh installs every extra); a plain
`pip install hfspeech` has neither optimum/onnxruntime (`export`, ONNX models in `predict`) nor starlette/uvicorn
(`serve`). Such a command stopped with a ModuleNotFoundError traceback (installed-package audit); `hfspeech.cli.main`
turns the error into one line naming the extra to install. So too for the system libraries pip does not install:
libsndfile, where soundfile's wheel bundles none (`OSError: cannot load library 'libsndfile.so'` on importing it),
and FFmpeg's, where torchcodec's failed load escapes a decode that does not name its file (`data.system_libraries`).
"""

from __future__ import annotations

from typing import Optional

from hfspeech.data.system_libraries import missing_system_library
from hfspeech.errors import HfspeechError
from hfspeech.machine_refusals import missing_extra as missing_extras_package  # the extras' table and wording


def missing_extra(error: BaseException, command: str) -> Optional[HfspeechError]:
    """The one-line error for `error` where it is an optional package's absence (`machine_refusals.missing_extra`:
    a launched run's processes say it too) or a system library's (its cause's, for an error raised from one); None
    for anything else."""
    return missing_extras_package(error, command) or missing_system_library(error, command)
