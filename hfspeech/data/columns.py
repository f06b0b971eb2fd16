"""Reading one whole column of a `datasets.Dataset`: one helper, so the reason it is read this way lives in one place."""

from datasets import Dataset


def column_values(dataset: Dataset, name: str) -> list:
    """Every value of column ``name``, in row order, read at once.

    Since datasets 4, ``dataset[name]`` is a lazy `Column`: iterating it formats (and decodes) one row at a time,
    about 1 ms a clip under load. ``Column[:]`` reads only that column's Arrow data, through the split's
    `select`/`shuffle` indices, and formats it as one batch: the cheapest public read of one column (a private
    Arrow ``take`` is faster on shuffled splits but skips formatting and decoding). Values come as the dataset's
    format gives a batch: a list for the default format. An `Audio` column that decodes would decode every clip:
    cast it to ``Audio(decode=False)`` first when only the paths or bytes are wanted."""
    return dataset[name][:]


def without_rows(split, rows):
    """`split` (a Dataset) less the rows at positions `rows`: itself when there are none (no index mapping added)."""
    dropped = set(rows)
    return split.select([i for i in range(len(split)) if i not in dropped]) if dropped else split
