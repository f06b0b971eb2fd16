"""The sample rates the training files were recorded at, counted as they are decoded, for the data report and card.

Every clip is resampled to the model's rate (`audio.decode_audio`), and its own rate was then forgotten: a model
trained on FSDD's 8 kHz recordings at 16 kHz has never heard content above 4 kHz, and its card could not say so.
The decoder keeps each clip's own rate in a `source_rate` column of the decoded table (0 for a bad file), so a warm
cache gives it back without opening a file; `data.prepare` counts it per split into `DataReport.source_rates`
({"train": {"8000": 1800}}) and drops the column. A decoded table without the column (written by an hfspeech that
did not keep it) counts nothing: the report then has no `source_rates`, and the card says nothing of rates.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from datasets import Dataset, Features

from hfspeech.data.columns import column_values

SOURCE_RATE = "source_rate"  # the decoded table's column: each clip's own sample rate in Hz, 0 for a bad file


def rate_counts(rates: Optional[list]) -> dict[str, int]:
    """{"8000": clips, ...} of a split's `source_rate` values, lowest rate first ({} for none known: None, or 0s)."""
    counts = Counter(int(rate) for rate in rates or () if rate)
    return {str(rate): counts[rate] for rate in sorted(counts)}


def without_source_rates(decoded: Dataset) -> tuple[Dataset, dict[str, int]]:
    """`decoded` less its `source_rate` column, and the clips per rate it held ({} for a table without one)."""
    if SOURCE_RATE not in decoded.column_names:
        return decoded, {}
    return decoded.remove_columns(SOURCE_RATE), rate_counts(column_values(decoded, SOURCE_RATE))


def family_features(features: Features) -> Features:
    """The decoded features less `source_rate`, for `decoded_caches.decoded_family`: a decoding made before the
    column was kept is of the same clips and settings, so it stays in the family its newer decodings supersede
    (in a family of its own it would never have been removed)."""
    return Features({name: kind for name, kind in features.items() if name != SOURCE_RATE})
