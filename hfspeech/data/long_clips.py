"""A note when many training clips are longer than the crop: the crop may miss what makes them their class.

Training crops a random `max_length_seconds` of each clip and evaluation its centre. On clips of about that
length the two see the same sound; on longer takes with the word at the start (a 4-s recording of a 0.5-s
keyword), the centre crop is silence: a new user's folder had 27 of 61 clips longer than the default 2-s crop,
14 of them silent in the centre, and the run said nothing (`data_report.json` `warnings: []`). The note says
so, with the two flags that fix it. It reads the `length` column `data.prepare` filled while decoding: nothing
is decoded again, and no cache fingerprint or seeded draw changes.
"""

from __future__ import annotations

import logging
from typing import Optional

from datasets import DatasetDict

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.columns import column_values
from hfspeech.data.prepare import DataReport

logger = logging.getLogger("hfspeech.data")

LONG_CLIPS_SHARE = 0.10  # a few long takes are fine; more than this share of the training clips is a pattern


def long_clips_note(lengths: list[int], crop_seconds: Optional[float], sampling_rate: int,
                    trimmed: bool = False) -> Optional[str]:
    """The note on `lengths` (samples at `sampling_rate`, training clips as decoded) when more than
    `LONG_CLIPS_SHARE` of them are longer than a crop of `crop_seconds` (None or 0: no crop, no note).
    `trimmed`: silence was trimmed already (`--trim_silence`), so only the crop length is suggested."""
    if not crop_seconds or not lengths:
        return None
    crop = seconds_to_samples(crop_seconds, sampling_rate)
    longer = sum(length > crop for length in lengths)
    if longer <= LONG_CLIPS_SHARE * len(lengths):
        return None
    fixes = "--max_length_seconds" if trimmed else "--max_length_seconds or --trim_silence"
    return (f"{longer} of {len(lengths)} training clips are longer than the {crop_seconds:g}-s crop (training crops a "
            f"random {crop_seconds:g} s, evaluation the centre): consider {fixes}")


def note_long_clips(dataset: DatasetDict, report: DataReport, crop_seconds: Optional[float], sampling_rate: int,
                    trimmed: bool = False) -> Optional[str]:
    """`long_clips_note` on the prepared train split (its `length` column), logged once and added to the report's
    `notes` (advice on settings, not a flaw of the splits: `warnings` are what makes scores flatter). None, and
    nothing added, without a prepared train split (a `--streaming` run's train is a stream) or a note."""
    train = dataset.get("train")
    if train is None or "length" not in train.column_names:
        return None
    note = long_clips_note(column_values(train, "length"), crop_seconds, sampling_rate, trimmed)
    if note is not None and note not in report.notes:  # once per report (each cross-validation fold has its own)
        logger.warning("data: %s", note)
        report.notes.append(note)
    return note
