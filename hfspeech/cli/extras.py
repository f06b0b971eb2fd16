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
        if library := _missing_library(cause):
            return HfspeechError(f"hfspeech {command} needs {library}")
    return None


def _missing_library(error: BaseException | None) -> Optional[str]:
    """What to say a command needs where `error` is a system library that could not be loaded, else None."""
    from hfspeech.data.system_libraries import LOAD_FAILURE, NEEDS_FFMPEG, NEEDS_LIBSNDFILE

    if isinstance(error, OSError) and "cannot load library" in str(error) and "sndfile" in str(error):
        return NEEDS_LIBSNDFILE
    if isinstance(error, RuntimeError) and LOAD_FAILURE in str(error):
        return NEEDS_FFMPEG
    return None
