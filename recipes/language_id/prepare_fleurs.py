#!/usr/bin/env python
"""Build a spoken-language-ID set from FLEURS (needs network): audio + language label, saved to disk.

    python recipes/language_id/prepare_fleurs.py data/fleurs_lid \
        --languages en_us de_de fr_fr es_419 it_it --max_per_language 1000

FLEURS (google/fleurs, CC-BY-4.0) has one configuration per language. datasets 4 no longer runs its
loading script, so this reads the Hub's Parquet conversion of each language, keeps `audio` and
`language` (e.g. "German"), caps each language's share of every split, and writes one `DatasetDict`
with `save_to_disk`, which the recipe reads with `--dataset_name data/fleurs_lid --label_column_name
language`. Idempotent: an existing output folder is kept unless --overwrite is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datasets import DatasetDict, concatenate_datasets, load_dataset

PARQUET_FILES = "hf://datasets/google/fleurs@refs%2Fconvert%2Fparquet/{language}/fleurs-{split}*.parquet"
SPLITS = ("train", "validation", "test")


def prepare_fleurs(output_dir: str, languages: list[str], max_per_language: int, seed: int = 0) -> DatasetDict:
    splits = {}
    for split in SPLITS:
        parts = []
        for language in languages:
            part = load_dataset("parquet", data_files=PARQUET_FILES.format(language=language, split=split),
                                split="train")
            part = part.select_columns(["audio", "language"]).shuffle(seed=seed)
            parts.append(part.select(range(min(len(part), max_per_language))))
        splits[split] = concatenate_datasets(parts).shuffle(seed=seed)
    dataset = DatasetDict(splits)
    dataset.save_to_disk(output_dir)
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--languages", nargs="+", default=["en_us", "de_de", "fr_fr", "es_419", "it_it"],
                        help="FLEURS configuration names (language_region)")
    parser.add_argument("--max_per_language", type=int, default=1000, help="cap per language and split")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if Path(args.output_dir, "dataset_dict.json").exists() and not args.overwrite:
        print(f"{args.output_dir} exists; pass --overwrite to rebuild it")
        return
    dataset = prepare_fleurs(args.output_dir, args.languages, args.max_per_language)
    print({name: len(split) for name, split in dataset.items()}, "->", args.output_dir)


if __name__ == "__main__":
    main()
