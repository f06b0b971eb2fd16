"""The system libraries pip does not install, FFmpeg's and libsndfile: a machine without them told in one line, apart
from a file that cannot be decoded.

torchcodec decodes through FFmpeg's shared libraries (libavcodec, libavformat ...), which it loads when
`torchcodec.decoders` is first imported: without them the import raises torchcodec's `RuntimeError("Could not load
libtorchcodec. Likely causes: ...")`, and so does every file only FFmpeg decodes (M4A/AAC, WebM, WMA, an MP3
without a Xing/VBRI length header, a FLAC piped out of an encoder). Read as the file's fault (an `AudioFileError`,
"corrupt or unsupported format"), `--skip_bad_files` dropped every such clip -- a whole speaker recorded as M4A --
and trained on the rest with exit code 0, and the server answered 400, blaming the client. The fault is the
machine's: `FfmpegUnavailableError` is a `HfspeechError` (one line, exit code 2) and not an `AudioFileError`, so no
`--skip_bad_files` skips it. soundfile loads libsndfile when imported (its wheel bundles one for Linux x86_64 and
arm64, macOS and Windows; elsewhere the system's): `soundfile_module` names the package a failed load needs.
This module sits at the bottom: it imports nothing from hfspeech but `errors`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Iterator, Optional

from hfspeech.errors import HfspeechError, near_causes

LOAD_FAILURE = "Could not load libtorchcodec"  # torchcodec's words (torchcodec/_internally_replaced_utils.py)


def on_this_system(linux: str, macos: str, windows: str, platform: str = sys.platform) -> str:
    """The words for this system of three (an install command): apt-get's were given on macOS and Windows too."""
    return macos if platform == "darwin" else windows if platform == "win32" else linux


def needs_ffmpeg(platform: str = sys.platform) -> str:
    """torchcodec loads FFmpeg's shared libraries: on Windows only a "shared" build has them."""
    install = on_this_system("apt-get install ffmpeg", "brew install ffmpeg", "a \"shared\" FFmpeg build, its bin "
                             "folder on PATH, or conda install -c conda-forge ffmpeg", platform)
    return (f"FFmpeg's shared libraries (FFmpeg 4 to 8), which torchcodec could not load: install FFmpeg ({install}; "
            "`python -c \"import torchcodec.decoders\"` shows torchcodec's reasons)")


def needs_libsndfile(platform: str = sys.platform) -> str:
    """soundfile's wheels for macOS and Windows bundle libsndfile: there a failed load is a broken install."""
    install = on_this_system("install libsndfile1 (apt-get install libsndfile1)", "reinstall soundfile, whose wheel "
                             "bundles it (pip install --force-reinstall soundfile), or brew install libsndfile",
                             "reinstall soundfile, whose wheel bundles it (pip install --force-reinstall soundfile)",
                             platform)
    return f"libsndfile, which soundfile could not load: {install}"


NEEDS_FFMPEG = needs_ffmpeg()
NEEDS_TORCHCODEC = "torchcodec, which is not installed: pip install torchcodec (the version hfspeech pins)"
DECODED_WITHOUT_FFMPEG = "WAV, FLAC, Ogg (Vorbis, Opus) and MP3 with a Xing/VBRI length header decode without it"
NEEDS_LIBSNDFILE = needs_libsndfile()


class MissingLibraryError(HfspeechError, RuntimeError):
    """A system library the machine lacks: its fault, not a file's, so not an `AudioFileError` that is skipped."""

    def __init__(self, message: str = ""):
        if message.startswith("Caught ") and "Original Traceback" in message:  # torch re-raised a DataLoader
            from hfspeech.data.streaming import unwrapped  # worker's: its one line back (data.streaming imports us)

            message = unwrapped(message)
        super().__init__(message)


class FfmpegUnavailableError(MissingLibraryError):
    """A file that needs FFmpeg on a machine where torchcodec cannot load FFmpeg's libraries (or is not installed)."""


def machine_cannot_decode(error: BaseException) -> Optional[str]:
    """What this machine lacks where `error`, a failed torchcodec decode, is that lack rather than the file's fault:
    "FFmpeg" (torchcodec could not load its libraries) or "torchcodec" (not installed); None for the file's fault.
    torchcodec's own words say it; should they change, a `torchcodec.decoders` that still will not import does."""
    for cause in _chain(error):
        if isinstance(cause, ModuleNotFoundError) and (cause.name or "").split(".")[0] == "torchcodec":
            return "torchcodec"
        if LOAD_FAILURE in str(cause):
            return "FFmpeg"
    if "torchcodec.decoders" in sys.modules:  # loaded: FFmpeg is there, the file is at fault
        return None
    try:
        importlib.import_module("torchcodec.decoders")
    except ModuleNotFoundError:
        return "torchcodec"
    except Exception:  # noqa: BLE001 -- whatever it raises, torchcodec cannot decode here
        return "FFmpeg"
    return None


def raise_if_machine_cannot_decode(name: str, error: BaseException) -> None:
    """`FfmpegUnavailableError` for `name`, a file only FFmpeg decodes, when `error` (its failed decode) is the
    machine's lack (`machine_cannot_decode`), not the file's fault; else nothing."""
    if missing := machine_cannot_decode(error):
        needed = NEEDS_TORCHCODEC if missing == "torchcodec" else NEEDS_FFMPEG
        raise FfmpegUnavailableError(f"{name}: decoding it needs {needed}; {DECODED_WITHOUT_FFMPEG}") from error


def missing_library(error: BaseException | None) -> Optional[str]:
    """What a command needs where `error` is a system library that could not be loaded (libsndfile on importing
    soundfile, FFmpeg's on importing torchcodec's decoders): `NEEDS_LIBSNDFILE` or `NEEDS_FFMPEG`; else None."""
    if isinstance(error, OSError) and "cannot load library" in str(error) and "sndfile" in str(error):
        return NEEDS_LIBSNDFILE
    if isinstance(error, RuntimeError) and LOAD_FAILURE in str(error):
        return NEEDS_FFMPEG
    return None


def missing_system_library(error: BaseException, command: str) -> Optional[HfspeechError]:
    """`hfspeech COMMAND needs libsndfile1 ...` where `error` (or the error one level behind it) is a system library
    pip cannot install, as the CLI and every process of a launched run say it; None for anything else."""
    library = next(filter(None, map(missing_library, near_causes(error))), None)
    return None if library is None else HfspeechError(f"hfspeech {command} needs {library}")


def soundfile_module(name: str):
    """`soundfile`, imported here for decoding `name`; `MissingLibraryError` naming libsndfile1 where it cannot load
    libsndfile (`OSError: cannot load library 'libsndfile.so'`), which `predict` showed as that line alone."""
    try:
        import soundfile
    except OSError as error:
        if "sndfile" not in str(error):
            raise
        raise MissingLibraryError(f"{name}: decoding it needs {NEEDS_LIBSNDFILE}") from error
    return soundfile


def _chain(error: Optional[BaseException]) -> Iterator[BaseException]:
    """`error` and the errors it was raised from or while handling (datasets re-raises a failed import as its own)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def plain_audio_features(features):
    """`features` with each undecoded `Audio` column typed as the struct it holds (`{"bytes", "path"}`, the same
    Arrow type): `Audio.encode_example` first imports torchcodec's encoder, which loads FFmpeg's libraries, so
    writing or streaming rows of WAV clips failed on a machine without FFmpeg. Decoding needs FFmpeg only for the
    files that do."""
    from datasets import Audio, Features, Value

    plain = {"bytes": Value("binary"), "path": Value("string")}
    return Features({name: plain if isinstance(feature, Audio) and not feature.decode else feature
                     for name, feature in features.items()})
