"""Leave-one-speaker-out manifests of the Free Spoken Digit Dataset: the digit is the label, one speaker is
the test split, never heard in training; validation is 10% of each digit of each training speaker.

    python recipes/fsdd/prepare_fsdd.py ../shared/data/fsdd/recordings data/fsdd-george --test_speaker george

Idempotent: it rewrites the three CSV files (path,label,speaker; absolute paths) only when they differ.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

SPLITS = ("train", "validation", "test")


def read_recordings(recordings_dir: Path) -> list[tuple[Path, str, str]]:
    """(path, digit, speaker) of every `{digit}_{speaker}_{index}.wav`."""
    rows = []
    for path in sorted(recordings_dir.glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        rows.append((path.resolve(), digit, speaker))
    if not rows:
        raise SystemExit(f"{recordings_dir}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)")
    return rows


def split_rows(rows, test_speaker: str, validation_fraction: float, seed: int) -> dict[str, list]:
    speakers = sorted({speaker for _, _, speaker in rows})
    if test_speaker not in speakers:
        raise SystemExit(f"unknown speaker {test_speaker!r}; the recordings have {speakers}")
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for row in rows:
        groups[(row[2], row[1])].append(row)
    splits = {name: [] for name in SPLITS}
    for (speaker, _), members in sorted(groups.items()):
        if speaker == test_speaker:
            splits["test"].extend(members)
            continue
        order = rng.permutation(len(members))
        held = int(round(validation_fraction * len(members)))
        splits["validation"].extend(members[i] for i in order[:held])
        splits["train"].extend(members[i] for i in order[held:])
    return splits


def write_if_changed(path: Path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "speaker"])
    writer.writerows((str(p), digit, speaker) for p, digit, speaker in rows)
    if not path.is_file() or path.read_text() != buffer.getvalue():
        path.write_text(buffer.getvalue())


def prepare_fsdd(recordings_dir, output_dir, test_speaker: str, validation_fraction: float = 0.1,
                 seed: int = 0) -> dict[str, Path]:
    splits = split_rows(read_recordings(Path(recordings_dir)), test_speaker, validation_fraction, seed)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SPLITS:
        paths[name] = output / f"{name}.csv"
        write_if_changed(paths[name], splits[name])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--test_speaker", required=True)
    parser.add_argument("--validation_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in prepare_fsdd(args.recordings_dir, args.output_dir, args.test_speaker,
                                   args.validation_fraction, args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
