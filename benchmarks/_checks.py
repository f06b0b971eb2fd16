"""What every benchmark checks before it starts: its command line's paths, and how a user's mistake is shown.

A benchmark runs for minutes or hours, so a path it will write at the end (--output) or read on the way (a
model folder) is checked first, and a mistake is one line (`error: ...`, exit code 2), as the `hfspeech`
command shows it, never a traceback after the work is done.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# No benchmark downloads anything: models are local folders or `hfspeech pretrained` conversions, data sets are
# generated or ../shared. Set on import, before transformers / datasets / huggingface_hub (here or in the runs
# these scripts start), so that a Hub id given by mistake is an error, not a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from hfspeech.errors import UsageError  # noqa: E402


def run_script(main, argv=None):
    """A benchmark's `main(argv)`, with a user's mistake (`HfspeechError`: a missing model folder, an output
    path that is a folder ...) shown as one line `error: ...` and exit code 2, as the `hfspeech` command does;
    HFSPEECH_DEBUG=1 shows the traceback instead."""
    from hfspeech.cli.common import one_line
    from hfspeech.errors import HfspeechError

    try:
        return main(argv)
    except HfspeechError as error:
        if os.environ.get("HFSPEECH_DEBUG", "") not in ("", "0"):
            raise
        print(one_line(error), file=sys.stderr)
        raise SystemExit(2) from None


def writable_path(path: str | Path, flag: str, folder: bool = False) -> Path:
    """`path` checked before a run of minutes or hours, not when its results are written at the end: a file
    (`folder`: a folder) there or creatable, under folders that are folders and writable."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise UsageError(f"{flag} {path}: is a {'file' if folder else 'folder'}; give the path of a "
                         f"{'folder' if folder else 'file'} to write")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {parent} is not writable")
    return path


def existing_model(path: str | Path, flag: str = "--model") -> Path:
    """A model folder (or exported model file) that is there: a name that is not would be taken for a Hub id."""
    if not Path(path).exists():
        raise UsageError(f"{flag} {path}: model folder not found (benchmarks read local models only)")
    return Path(path)


def local_pretrained(name_or_path: str, flag: str = "--model") -> str:
    """The folder of a `hfspeech pretrained` short name (converted locally) or a model folder; never a Hub id."""
    from hfspeech.models.whisper.pretrained import PRETRAINED, resolve_pretrained

    if not os.path.exists(name_or_path) and name_or_path not in PRETRAINED:
        raise UsageError(f"{flag} {name_or_path}: neither a model folder nor a short name of `hfspeech pretrained` "
                         f"({', '.join(PRETRAINED)}); benchmarks download nothing")
    return resolve_pretrained(name_or_path)


def read_reports(paths: list[Path]) -> list[dict]:
    """The result files of `--report`, each checked: there, and JSON."""
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise UsageError(f"--report {path}: cannot be read as a results file ({error})") from None
    return reports
