"""Decode every clip once -- mono, resampled, optionally trimmed -- and keep it as Arrow.

The reference recipe decodes and resamples every file again on every epoch inside `set_transform`. Here
`datasets.map` does it once (in parallel with `num_proc`), and its fingerprinted cache makes a second run over the
same files free; each epoch only crops and augments. Splits carved from one table by a seeded draw are decoded as
that table, once for every seed, and so are cross-validate's folds of one manifest, once for every fold
(`dataset_columns.whole_table_keys`, `parts_of_one_table`).

Every clip is decoded, a bad file kept as a row with its problem; then bad files stop preparation with an
`AudioFileError` naming the first, counting the others, and saying how to go on (`data.decode_errors`). With
`skip_bad_files=True` they are dropped instead, each counted and listed in the returned `DataReport`. Either way the
cache is kept, and the next run decodes only its failed rows again (`data.decode_retry`). A decoding that a newer
decoder (or clips rewritten since) supersedes at the same settings is removed once unused (`data.decoded_caches`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, List, Value

from hfspeech.data.audio import AudioFileError, decode_audio, describe_source, trim_silence
from hfspeech.data.cache_users import cache_folder_problem, cached_files, is_users_folder, prepared_file
from hfspeech.data.clip_digests import files_content_key, forget_read_files
from hfspeech.data.columns import column_values, without_rows
from hfspeech.data.dataset_columns import whole_table_keys
from hfspeech.data.decode_errors import SKIP_HINT, raise_first_bad, with_skip_hint  # noqa: F401 (theirs to import)
from hfspeech.data.decode_errors import bad_clip_names
from hfspeech.data.decode_retry import decoded_fingerprint, with_failures_retried
from hfspeech.data.decoded_caches import decoded_family, decoded_into_cache, supersede_earlier_decodings
from hfspeech.data.folders import DESCRIPTION
from hfspeech.data.run_scratch import RUN_SCRATCH
from hfspeech.data.source_rates import SOURCE_RATE, family_features, without_source_rates
from hfspeech.data.writer_batches import writer_batch_size

logger = logging.getLogger("hfspeech.data")


@dataclass
class DataReport:
    """Every file of a run's data, accounted for; saved next to the model as `data_report.json`.

    `found`: audio files (or manifest rows) per split as loaded; `kept`: clips used per split (after the
    held-out splits are carved from train and `--max_*_samples` limits, which `limited` counts);
    `skipped`: bad files dropped with `--skip_bad_files` (path and problem); `ignored`: files in an audio
    folder that are not audio, or hidden (path and reason); `notes`: how the layout was read; `warnings`: what
    makes the scores flatter or mislead (a file or speaker in two splits, a class missing from a split);
    `classes_missing`: each split's missing classes, all named; `source_rates`: clips per file rate per split.
    """

    sampling_rate: int = 0
    found: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    limited: dict[str, int] = field(default_factory=dict)
    ignored: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # leaks and degenerate splits (`data.split_audit`)
    # {split: every class it has no clip of}: the warnings name three ("and 672 more"), this all of them
    classes_missing: dict[str, list[str]] = field(default_factory=dict)
    # {split: {"8000": clips}} (`data.source_rates`): not saved where none is known (streamed, an older cache)
    source_rates: dict[str, dict[str, int]] = field(default_factory=dict)
    # the skipped files' row numbers per split (`kept_rows`); not saved: data_report.json names them by path
    skipped_rows: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @property
    def num_skipped(self) -> int:
        return sum(len(files) for files in self.skipped.values())

    def add_listing(self, found: dict[str, int], ignored: list[dict[str, str]], notes: list[str]) -> None:
        """What loading found: the counts per split, the files ignored, and notes on the layout (logged)."""
        self.found.update(found)
        self.ignored.extend(ignored)
        self.notes.extend(notes)
        for note in notes:
            logger.warning("data: %s", note)
        if unexpected := _unexpected(ignored):
            logger.warning("data: ignored %d file(s) that are not audio or are hidden (e.g. %s: %s); all are listed "
                           "in data_report.json", len(unexpected), unexpected[0]["path"], unexpected[0]["reason"])

    def to_dict(self) -> dict:
        saved = {k: v for k, v in asdict(self).items() if k != "skipped_rows" and (v or k != "source_rates")}
        return {**saved, "num_found": sum(self.found.values()), "num_kept": sum(self.kept.values()),
                "num_skipped": self.num_skipped, "num_ignored": len(self.ignored)}

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)

    def summary(self) -> str:
        found = ", ".join(f"{name}: {n}" for name, n in self.found.items())
        kept = ", ".join(f"{name}: {n}" for name, n in self.kept.items())
        text = f"audio files found ({found or '-'}); clips used ({kept})"
        if self.limited:
            text += f"; left out by --max_*_samples ({', '.join(f'{k}: {n}' for k, n in self.limited.items())})"
        if self.num_skipped:
            text += f"; skipped {self.num_skipped} bad file(s), listed in data_report.json"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s) about the splits, in data_report.json"
        if unexpected := _unexpected(self.ignored):
            text += f"; ignored {len(unexpected)} non-audio or hidden file(s), listed in data_report.json"
        return text

    def warn_skipped(self) -> None:
        """The skipped bad files said on stderr, with the first one named: `hfspeech evaluate --skip_bad_files`
        logs no summary there, and its skipped files were otherwise only a count in its JSON."""
        if self.num_skipped:
            first = next(files[0] for files in self.skipped.values() if files)
            logger.warning("data: skipped %d bad file(s) (e.g. %s: %s), listed in data_report.json",
                           self.num_skipped, first["path"], first["problem"])


def _unexpected(ignored: list[dict[str, str]]) -> list[dict[str, str]]:
    """The ignored files worth a word: not a folder's README.md or dataset_info.json (`data.folders`), which
    `demo-data` writes beside its clips, so that every run on its folder warned of 2 ignored files (still listed)."""
    return [entry for entry in ignored if entry["reason"] != DESCRIPTION]


def kept_rows(dataset: DatasetDict, report: DataReport) -> DatasetDict:
    """The undecoded splits given to `prepare_dataset` less the rows it skipped: the clips a run trained on (or an
    evaluation scored), as `data.clip_digests` must record them; a skipped 0-byte file's digest (SHA-1 of nothing)
    recorded made every empty file anywhere count as trained on."""
    kept = {}
    for name, split in dataset.items():
        kept[name] = without_rows(split, report.skipped_rows.get(name, ()))
    return DatasetDict(kept)


def _decoder(sampling_rate: int, trim: bool, trim_top_db: float, label_type: Optional[pa.DataType] = None):
    """The `datasets.map` function of `prepare_dataset`: a bad file is an empty row carrying its problem (raised
    after the map, or dropped). `label_type`: the labels' Arrow type (alone, an empty label list is `list<null>`)."""

    def decode(example):
        name, rates = describe_source(example["audio"]), []  # rates: the file's own (`data.source_rates`)
        try:
            waveform = decode_audio(example["audio"], sampling_rate, rates)
        except AudioFileError as error:
            waveform, problem, rates = np.zeros(0, np.float32), error.problem, []
        else:
            waveform, problem = trim_silence(waveform, trim_top_db) if trim else waveform, ""
        return _arrow_row(waveform, name, problem, pa.array([example["label"]], label_type), rates[-1] if rates else 0)

    return decode


def _arrow_row(waveform: np.ndarray, name: str, problem: str, label: pa.Array, source_rate: int) -> pa.Table:
    """A one-row Arrow table over the waveform's own samples, written as it is when alone in its batch (a long clip:
    `data.writer_batches`); a numpy row was copied 3 times (`np.array`, `flatten`, the join: 205 MB beside 73 MB)."""
    samples = pa.array(np.ascontiguousarray(waveform, dtype=np.float32))  # zero-copy
    return pa.table({"input_values": pa.ListArray.from_arrays(pa.array([0, len(samples)], pa.int32()), samples),
                     "length": pa.array([len(samples)], pa.int64()), "path": pa.array([name], pa.string()),
                     "error": pa.array([problem], pa.string()), "label": label,
                     SOURCE_RATE: pa.array([source_rate], pa.int32())})


def prepare_dataset(
    dataset: DatasetDict,
    sampling_rate: int,
    trim: bool = False,
    trim_top_db: float = 40.0,
    skip_bad_files: bool = False,
    num_proc: Optional[int] = None,
    report: Optional[DataReport] = None,
) -> tuple[DatasetDict, DataReport]:
    """Turn `audio` (undecoded) + `label` into `input_values` (float32) + `length` + `path` + `label`.

    `report`: the loader's report (files found, ignored), completed here with what was kept and skipped."""
    features = Features({"input_values": List(Value("float32")), "length": Value("int64"), "path": Value("string"),
                         "error": Value("string"), "label": dataset[next(iter(dataset))].features["label"],
                         SOURCE_RATE: Value("int32")})
    # True: bad files kept as rows whether skipped or not, so a skipping run and one that is not read one cache
    settings = [sampling_rate, trim, trim_top_db, True]
    report = report if report is not None else DataReport()
    report.sampling_rate = sampling_rate
    forget_read_files()  # this run's files read anew for the decoded key, once (`clip_digests`)
    file_sizes, wholes = {}, {}  # file_sizes: {path: bytes}, each file stat-ed once for all the splits
    decode_split = partial(_decode_split, features=features, num_proc=num_proc, file_sizes=file_sizes)
    prepared, tables = {}, whole_table_keys(dataset)
    for name, split in dataset.items():
        if name in tables:
            decoded = _from_whole_table(split, name, tables[name], wholes, decode_split, settings)
        else:
            decoded = decode_split(split, f"{name} audio", settings)
        if not skip_bad_files:
            raise_first_bad(decoded, wholes[tables[name]] if name in tables else decoded)
        bad = [i for i, error in enumerate(column_values(decoded, "error")) if error]
        if bad:
            report.skipped[name] = [{"path": clip, "problem": decoded[i]["error"]}
                                    for i, clip in zip(bad, bad_clip_names(decoded, bad))]
            report.skipped_rows[name] = bad
            decoded = without_rows(decoded, bad)
        if len(decoded) == 0:
            raise AudioFileError(name, "no usable audio left in this split after skipping bad files")
        prepared[name], counts = without_source_rates(decoded.remove_columns("error"))
        report.source_rates.update({name: counts} if counts else {})
        report.kept[name] = len(decoded)
    return DatasetDict(prepared), report


def _decode_split(split, what: str, settings: list, features, num_proc, file_sizes):
    """`split` decoded (`_decoder` with `settings`) into its cache file (`data.decoded_caches`), named by
    `decoded_fingerprint`, its earlier decodings at the same settings removed once unused; read back from a warm
    cache, its failed rows are decoded again (`data.decode_retry`)."""
    content = files_content_key(split)  # the clips' bytes: in the name, and told apart from their paths' family
    fingerprint = decoded_fingerprint(split, settings, features, content)
    decode = _decoder(*settings[:3], features.arrow_schema.field("label").type)
    cache_file_name = _cache_file_name(split, settings, fingerprint)
    table_file = cache_file_name or split._get_cache_file_path(fingerprint)
    warm = bool(cached_files(table_file))
    decoded = decoded_into_cache(
        split, cache_file_name, decode,
        remove_columns=split.column_names,
        features=features,
        num_proc=num_proc if num_proc and num_proc > 1 and len(split) >= 2 * num_proc else None,
        writer_batch_size=writer_batch_size(split, file_sizes),  # clips held until written: a few, not 1000
        desc=f"decoding {what} at {settings[0]} Hz",
        new_fingerprint=fingerprint,
    )
    supersede_earlier_decodings(decoded_family(split, settings, family_features(features)), table_file, what, content)
    if not warm:
        return decoded

    def decode_into(rows, name: Optional[str]):  # the failed rows again: cached beside the table, or in memory
        arguments = dict(remove_columns=rows.column_names, features=features, writer_batch_size=writer_batch_size(
            rows, file_sizes), desc=f"decoding again the {len(rows)} clip(s) of {what} that failed when cached")
        return rows.map(decode, keep_in_memory=True, **arguments) if name is None else \
            decoded_into_cache(rows, name, decode, **arguments)

    return with_failures_retried(split, decoded, decode_into)


def _from_whole_table(split, name: str, key: str, wholes: dict, decode_split, settings: list):
    """`split`'s rows of its whole table decoded once (kept in `wholes` by `key` for the other splits cut from it,
    cached under `key`: every seed's draw and every cross-validation fold reads the same file), each bad file kept
    as a row with its problem: `prepare_dataset` raises it only if `split` has it, as decoding the split alone would,
    and counts the table's others (`raise_first_bad`)."""
    if key not in wholes:
        whole = Dataset(split.data, info=split.info.copy(), split=split.split, fingerprint=key)
        wholes[key] = decode_split(whole, f"{name} audio (with the splits cut from it)", settings)
    return wholes[key].select(split._indices.column(0).to_pylist(), keep_in_memory=True)  # numpy ints: IndexError


def _cache_file_name(split, settings: list, fingerprint: str) -> Optional[str]:
    """Where `datasets.map` writes the decoded split: beside the split's own files (None: datasets' choice), or
    when there are none (manifests, held in memory), they are in the run's scratch folder (`run_scratch_folder`),
    in a folder the user saved (`save_to_disk`: theirs, `data.cache_users.is_users_folder`; two seeds grew a 60 KB
    folder of paths to 59 MB) or that folder is read-only, in the datasets cache. A split in memory was decoded
    into memory (10,000 one-second clips: 840 MB of RAM), again on every run. The name holds the split's
    fingerprint (its files' `file_stat`, `data.dataset_columns`) and `settings`. A read-only folder that holds the
    decoded split already (`fingerprint`: `decoded_fingerprint`, which holds the files' bytes and the decoder's code
    too) is read: a team's warm cache, made read-only."""
    folder = Path(split.cache_files[0]["filename"]).parent if split.cache_files else None
    temporary = folder is not None and folder.name.startswith(f".{RUN_SCRATCH}-partial-")
    if folder and not temporary and not is_users_folder(folder) and (
            cached_files(split._get_cache_file_path(fingerprint)) or not cache_folder_problem(folder)):
        return None
    return prepared_file(split, settings, key=fingerprint)  # the files' bytes and the decoder's code: its name
