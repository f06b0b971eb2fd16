"""Every process of a multi-process run trains on the same data, or none trains.

Each machine of a run prepares its own copy of the data (its own datasets cache, often its own copy of the clips),
and each process takes its share of the rows by position (the distributed sampler). A clip that one machine's copy
lacks, or cannot decode (skipped with --skip_bad_files), shifted that machine's table: its processes trained on
other rows than their share, tested on other clips, and the run finished (exit 0), its metrics.json saying 0
skipped (machine 0's count). Once the data is prepared, every process's classes, clip counts per split and a
digest of each split's clips (their bytes and labels in order, not their paths: each machine keeps its copy where it
keeps it) are gathered (`training.distributed.values_of_every_process`); where they differ, every process stops with
the same one line, having seen the same gathered values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from datasets import DatasetDict

from hfspeech.data.clip_digests import clip_digests
from hfspeech.data.columns import column_values
from hfspeech.errors import DataError, first_few
from hfspeech.training.distributed import values_of_every_process

REMEDY = "give every machine the same data"


def check_every_process_same_data(label_names: list[str], kept: Optional[DatasetDict],
                                  prepared: DatasetDict) -> None:
    """A `DataError` on every process where their data differs (`different_data`). A collective: every process calls
    it once its data is prepared. `kept`: the undecoded splits less the skipped files (`data.prepare.kept_rows`),
    whose clips are digested; None with --streaming, whose `prepared` evaluation splits are counted only."""
    problem = different_data(values_of_every_process(data_identity(label_names, kept, prepared)))
    if problem:
        raise DataError(problem)


def data_identity(label_names: list[str], kept: Optional[DatasetDict], prepared: DatasetDict) -> dict:
    """{"classes": [...], split: [clips, digest of their bytes and labels in order, or None]}: what must be equal
    on every process (JSON types: it travels between them pickled and is compared as gathered)."""
    identity: dict = {"classes": list(label_names)}
    for name, split in (kept if kept is not None else prepared).items():
        digest = None
        if kept is not None:
            rows = list(zip(clip_digests(split), column_values(split, "label")))
            digest = hashlib.sha1(json.dumps(rows).encode()).hexdigest()
        identity[name] = [len(split), digest]
    return identity


def different_data(identities: list[dict]) -> Optional[str]:
    """The line saying how the processes' data differs (`data_identity` of each, by global rank), or None."""
    for name in dict.fromkeys(key for identity in identities for key in identity):
        values = [identity.get(name) for identity in identities]
        if all(value == values[0] for value in values):
            continue
        if name == "classes":
            said = by_process([first_few(value or [], 10) for value in values], "has classes {}", "; ")
            return f"{said} (a class missing on one machine's copy of the data): {REMEDY}"
        counts = [value[0] if value else 0 for value in values]  # a split one process has not: no clips
        if len(set(counts)) > 1:
            return (f"{name}: {by_process(counts, 'has {} clips')} (a clip skipped or missing on one machine's copy "
                    f"of the data): {REMEDY}")
        holders = by_process([value[1] for value in values], "", " and ")
        return (f"{name}: the {counts[0]} clips differ between {holders} (a clip, or its label, that differs on one "
                f"machine's copy of the data): {REMEDY}")
    return None


def by_process(values: list, template: str, separator: str = ", ") -> str:
    """Each distinct value with the processes holding it: `process 0 has 32 clips, process 1 has 31 clips` (template
    "has {} clips", "have" for several processes); with an empty template the processes alone (`processes 0, 1 and
    process 2`)."""
    groups: dict = {}
    for rank, value in enumerate(values):
        groups.setdefault(str(value), []).append(rank)
    parts = []
    for value, ranks in groups.items():
        said = template.format(value)
        if len(ranks) > 1:
            said = said.replace("has ", "have ", 1)
        parts.append(f"process{'es' if len(ranks) > 1 else ''} {first_few(ranks, 4)}" + (f" {said}" if said else ""))
    return separator.join(parts)
