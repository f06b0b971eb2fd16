"""Reuse a generated folder when a finished run with the same parameters left it; otherwise start it over.

Every generator here (and the benchmarks' clip generator) writes a folder that can take minutes to make and
is made again and again by tests, demos and benchmarks. They all follow one rule, kept in this one place:
the parameters are written to an info file *last*, after every clip, and removed *first* when a run starts
over, so an interrupted run never looks finished; a folder is reused only when its info file holds the same
parameters and every file the run would write is there. A run marks the folder as being generated
(`GENERATING_MARK`) from its start to its end, so that a folder a generator wrote, even one an interrupted run left,
is told from a folder of the user's that it must not write into (`generators_own`). That check is made where the
writing starts (`GeneratedFolder.start_over`, `refuse_users_folder`), so the Python API refuses such a folder as
`hfspeech demo-data` does; a finished folder is reused without a write (a read-only one too), and a folder that
cannot be written is one line naming it (`errors.writing_to`), not a PermissionError traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Optional

from hfspeech.errors import writing_to
from hfspeech.output_folders import check_output_folder

INFO_FILE = "dataset_info.json"
# Part of every generator's parameters: bump it when a generator's output changes, so old folders are remade.
GENERATOR_VERSION = 1
GENERATING_MARK = ".hfspeech-generating"  # in the folder while a run writes it; gone once its info file is written
THEN = "make room and run it again"  # after a refused write ("make room" becomes "make it writable" where read-only)


def refuse_users_folder(root, ours: Callable[[str], bool], made: str, flag: str = "") -> None:
    """A one-line `UsageError` when `root` holds files `ours` does not recognise (the user's), or cannot be
    written: `ROOT: holds other files (notes.md), not MADE that hfspeech generated; give a new or empty folder`,
    the words `hfspeech demo-data` refuses with. Called by every generator before its first write."""
    check_output_folder(root, flag, ours=ours, earlier=f"{made} that hfspeech generated")


def already_holds(path: Path, data: bytes) -> bool:
    """Whether `path` holds `data` already: a generator writes only what differs, so a finished folder (a read-only
    one too) is reused without a write."""
    try:
        return path.read_bytes() == data
    except OSError:  # missing or unreadable: written (again)
        return False


class GeneratedFolder:
    """The output folder `root` of one generator call with `params` (JSON values), expected to hold `expected`.
    `kind`: the parameter that names what it generates ("keywords", "languages", "events": `generators_own`), so a
    folder of the user's, or one another kind generated, is refused before anything is written; None (the
    benchmarks' clips): any folder holding its info file or mark is its own."""

    def __init__(self, root, params: dict, expected: Iterable[Path] = (), info_file: str = INFO_FILE,
                 kind: Optional[str] = None):
        self.root, self.params, self.expected = Path(root), dict(params), list(expected)
        self.info_path, self.kind = self.root / info_file, kind

    def previous_info(self) -> dict:
        """What the last finished run recorded ({} when none did)."""
        return json.loads(self.info_path.read_text(encoding="utf-8")) if self.info_path.is_file() else {}

    def is_finished(self) -> bool:
        """True when a finished run with these parameters left every expected file."""
        info = self.previous_info()
        return (bool(info) and {key: info.get(key) for key in self.params} == self.params
                and all(path.exists() for path in self.expected))

    def refuse_if_not_ours(self) -> None:
        """`refuse_users_folder` for this folder: the user's files, another kind's, or a folder that cannot be
        written. A generator with work to do before its first write (espeak-ng looked for) calls it first."""
        ours = (generators_own(self.root, self.kind, self.info_path.name) if self.kind is not None
                else lambda name: name in (GENERATING_MARK, self.info_path.name))
        refuse_users_folder(self.root, ours, f"{self.kind} data" if self.kind else "data")

    def start_over(self) -> dict:
        """Unmark the folder (first: an interrupted run never looks finished) and create it, once it is found to be
        ours (`refuse_if_not_ours`); returns the previous run's info, so that the generator can remove the files
        that run wrote."""
        self.refuse_if_not_ours()
        info = self.previous_info()
        with writing_to(self.root, THEN):
            self.info_path.unlink(missing_ok=True)
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / GENERATING_MARK).touch()
        return info

    def finish(self, **details) -> None:
        """Mark the folder finished: its parameters plus `details` (counts ...), written last."""
        with writing_to(self.root, THEN):
            self.info_path.write_text(json.dumps({**self.params, **details}, indent=2) + "\n", encoding="utf-8")
            (self.root / GENERATING_MARK).unlink(missing_ok=True)


def generators_own(root, kind: str, info_file: str = INFO_FILE) -> Callable[[str], bool]:
    """Which names in `root` show that a generator of this `kind` (the key its parameters name it by: "keywords",
    "languages", "events") wrote it (`output_folders.users_files`' `ours`): its info file holding a
    `generator_version` and that key (not another tool's `dataset_info.json`: datasets' `save_to_disk` writes one;
    not another kind's, whose files would stay and be trained on as a class of their own), or the mark of a run
    that was interrupted. Any other non-empty folder is the user's: a generator writes
    `README.md`, `labels.csv` and `<class>/<class>_<nnnn>.wav` into it, and removes such clips a run left."""
    def ours(name: str) -> bool:
        if name == GENERATING_MARK:
            return True
        try:
            info = json.loads((Path(root) / name).read_text(encoding="utf-8")) if name == info_file else {}
            return "generator_version" in info and kind in info
        except (OSError, ValueError, TypeError):  # unreadable, not JSON, not an object: not ours
            return False
    return ours
