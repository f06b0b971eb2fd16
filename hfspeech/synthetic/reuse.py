"""Reuse a generated folder when a finished run with the same parameters left it; otherwise start it over.

Every generator here (and the benchmarks' clip generator) writes a folder that can take minutes to make and
is made again and again by tests, demos and benchmarks. They all follow one rule, kept in this one place:
the parameters are written to an info file *last*, after every clip, and removed *first* when a run starts
over, so an interrupted run never looks finished; a folder is reused only when its info file holds the same
parameters and every file the run would write is there. A run marks the folder as being generated
(`GENERATING_MARK`) from its start to its end, so that the command line can tell a folder a generator wrote, even one
an interrupted run left, from a folder of the user's that it must not write into (`generators_own`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

INFO_FILE = "dataset_info.json"
# Part of every generator's parameters: bump it when a generator's output changes, so old folders are remade.
GENERATOR_VERSION = 1
GENERATING_MARK = ".hfspeech-generating"  # in the folder while a run writes it; gone once its info file is written


class GeneratedFolder:
    """The output folder `root` of one generator call with `params` (JSON values), expected to hold `expected`."""

    def __init__(self, root, params: dict, expected: Iterable[Path] = (), info_file: str = INFO_FILE):
        self.root, self.params, self.expected = Path(root), dict(params), list(expected)
        self.info_path = self.root / info_file

    def previous_info(self) -> dict:
        """What the last finished run recorded ({} when none did)."""
        return json.loads(self.info_path.read_text(encoding="utf-8")) if self.info_path.is_file() else {}

    def is_finished(self) -> bool:
        """True when a finished run with these parameters left every expected file."""
        info = self.previous_info()
        return (bool(info) and {key: info.get(key) for key in self.params} == self.params
                and all(path.exists() for path in self.expected))

    def start_over(self) -> dict:
        """Unmark the folder (first: an interrupted run never looks finished) and create it; returns the
        previous run's info, so that the generator can remove the files that run wrote."""
        info = self.previous_info()
        self.info_path.unlink(missing_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / GENERATING_MARK).touch()
        return info

    def finish(self, **details) -> None:
        """Mark the folder finished: its parameters plus `details` (counts ...), written last."""
        self.info_path.write_text(json.dumps({**self.params, **details}, indent=2) + "\n", encoding="utf-8")
        (self.root / GENERATING_MARK).unlink(missing_ok=True)


def generators_own(root, kind: str) -> Callable[[str], bool]:
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
            info = json.loads((Path(root) / name).read_text(encoding="utf-8")) if name == INFO_FILE else {}
            return "generator_version" in info and kind in info
        except (OSError, ValueError, TypeError):  # unreadable, not JSON, not an object: not ours
            return False
    return ours
