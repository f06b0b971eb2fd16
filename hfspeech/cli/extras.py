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

from hfspeech.data.system_libraries import missing_library
from hfspeech.errors import HfspeechError

EXTRA_OF_PACKAGE = {"optimum": "export", "onnxruntime": "export", "onnx": "export",
                    "starlette": "serve", "uvicorn": "serve", "prometheus_client": "serve", "websockets": "serve"}


def missing_extra(error: BaseException, command: str) -> Optional[HfspeechError]:
    """The one-line error for `error` where it is an optional package's absence (its cause's, for an error raised
    from one); None for anything else."""
    for cause in (error, error.__cause__, error.__context__):
        name = getattr(cause, "name", None) if isinstance(cause, ModuleNotFoundError) else None
        extra = EXTRA_OF_PACKAGE.get((name or "").split(".")[0])
        if extra:
            return HfspeechError(f"hfspeech {command} needs {name}, which could not be imported: install "
                                 f"hfspeech's {extra!r} extra (pip install \"hfspeech[{extra}]\", with the project's "
                                 f"constraints.txt for the tested versions)")
        if library := missing_library(cause):
            return HfspeechError(f"hfspeech {command} needs {library}")
    return None
