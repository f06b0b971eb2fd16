"""A note when many clips are longer than the crop: the crop may miss what makes them their class.

Training crops a random `max_length_seconds` of each clip and scores the validation split (the best checkpoint's
choice) on its centre. On clips of about that length the two see the same sound; on longer takes with the word at the
start (a 4-s recording of a 0.5-s keyword), the centre crop is silence: a new user's folder had 27 of 61 clips longer
than the default 2-s crop, 14 of them silent in the centre, and the run said nothing (`data_report.json` `warnings:
[]`). The note says so for every split (an emotion corpus of 2-5-s utterances had 63 of 91 training clips and all
its test clips longer than the 2-s default, and the note counted only the training ones), with the length that covers
the longest clip and, untrimmed, `--trim_silence`. The test numbers score whole clips in windows of the crop, as
`hfspeech evaluate` does (`training.test_pass`). It reads the `length` column `data.prepare` filled while decoding:
nothing is decoded again, and no cache fingerprint or seeded draw changes.
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Union

from datasets import DatasetDict

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.columns import column_values
from hfspeech.data.prepare import DataReport

logger = logging.getLogger("hfspeech.data")

LONG_CLIPS_SHARE = 0.10  # a few long takes are fine; more than this share of a split's clips is a pattern


def long_clips_note(lengths: Union[dict[str, list[int]], list[int]], crop_seconds: Optional[float],
                    sampling_rate: int, trimmed: bool = False) -> Optional[str]:
    """The note on `lengths` (each split's clips as decoded, in samples at `sampling_rate`, a `train` split needed; a
    list: the training clips alone) when more than `LONG_CLIPS_SHARE` of a split's clips are longer than a crop of
    `crop_seconds` (None or 0: no crop, no note). `trimmed`: silence was trimmed already (`--trim_silence`), so only
    the crop length is suggested."""
    lengths = lengths if isinstance(lengths, dict) else {"train": list(lengths)}
    if not crop_seconds or not lengths.get("train"):
        return None
    crop = seconds_to_samples(crop_seconds, sampling_rate)
    counts = {name: (sum(length > crop for length in split), len(split)) for name, split in lengths.items() if split}
    if not any(longer > LONG_CLIPS_SHARE * total for longer, total in counts.values()):
        return None
    longest = max(max(split) for split in lengths.values() if split) / sampling_rate
    covering = math.ceil(longest * 2) / 2  # rounded up to half a second
    others = ", ".join(f"{name} {longer} of {total}" for name, (longer, total) in counts.items() if name != "train")
    scored = (f"training crops a random {crop_seconds:g} s of each" +
              (f" and scores validation on its centre {crop_seconds:g} s" if "validation" in counts else "") +
              (f"; the test numbers score whole clips in {crop_seconds:g}-s windows, as `hfspeech evaluate` does"
               if len(counts) > 1 else ""))
    fixes = f"--max_length_seconds {covering:g}" + ("" if trimmed else " or --trim_silence")
    longer, total = counts["train"]
    return (f"{longer} of {total} training clips are longer than the {crop_seconds:g}-s crop"
            f"{f' ({others})' if others else ''}, the longest {round(longest, 2):g} s: {scored}; consider {fixes}")


def note_long_clips(dataset: DatasetDict, report: DataReport, crop_seconds: Optional[float], sampling_rate: int,
                    trimmed: bool = False) -> Optional[str]:
    """`long_clips_note` on the prepared splits (their `length` column), logged once and added to the report's
    `notes` (advice on settings, not a flaw of the splits: `warnings` are what makes scores flatter). None, and
    nothing added, without a prepared train split (a `--streaming` run's train is a stream) or a note."""
    lengths = {name: column_values(split, "length") for name, split in dataset.items()
               if "length" in split.column_names}
    note = long_clips_note(lengths, crop_seconds, sampling_rate, trimmed)
    if note is not None and note not in report.notes:  # once per report (each cross-validation fold has its own)
        logger.warning("data: %s", note)
        report.notes.append(note)
    return note
