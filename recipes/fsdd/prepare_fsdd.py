"""Leave-one-speaker-out manifests of the Free Spoken Digit Dataset: the digit is the label, one speaker is
the test split, never heard in training; validation is 10% of each digit of each training speaker.

`--synthetic_per_digit N` adds N espeak-ng clips of each digit word ("zero" ... "nine", many voices, rates and
pitches, at FSDD's 8 kHz, `hfspeech.synthetic.spoken`) to the *training* split only, speaker "espeak": more
voices than three real speakers give, while validation and test stay real recordings.

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
SYNTHETIC_SPEAKER = "espeak"
SYNTHETIC_SNR_DB = (20.0, 40.0)  # FSDD is quiet studio-ish speech: a little noise, not the demo's 5-30 dB
# --synthetic_accents: espeak-ng voices of other languages reading the English words by their own rules (a
# crude stand-in for accented English: "six" /sis/ in French, /ziks/ in German), beside the English voices.
ACCENT_VOICES = ("fr", "de", "es", "it", "nl", "pt", "pl")  # Latin-script languages: they read, not switch to en


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


def synthetic_digit_rows(output_dir: Path, per_digit: int, seed: int = 0,
                         accents: bool = False) -> list[tuple[Path, str, str]]:
    """(path, digit, "espeak") of `per_digit` generated clips of each digit word, written once into
    `output_dir` (the generator is idempotent: the same parameters reuse the finished folder)."""
    from hfspeech.synthetic.digits import generate_spoken_digits  # here: the plain split needs no espeak-ng
    from hfspeech.synthetic.espeak import ESPEAK_VOICES

    voices = ESPEAK_VOICES + (ACCENT_VOICES if accents else ())
    manifest = generate_spoken_digits(output_dir, per_digit, sampling_rate=8000, clip_seconds=1.0,
                                      noise_snr_db=SYNTHETIC_SNR_DB, seed=seed, voices=voices,
                                      speaker=SYNTHETIC_SPEAKER)
    with open(manifest, newline="") as f:
        return [(Path(row["path"]), row["label"], row["speaker"]) for row in csv.DictReader(f)]


def prepare_fsdd(recordings_dir, output_dir, test_speaker: str, validation_fraction: float = 0.1,
                 seed: int = 0, synthetic_per_digit: int = 0, synthetic_dir=None,
                 synthetic_accents: bool = False) -> dict[str, Path]:
    """The three manifests in `output_dir`; with `synthetic_per_digit`, generated clips (kept in
    `synthetic_dir`, default `output_dir/espeak-digits`) join the training split."""
    splits = split_rows(read_recordings(Path(recordings_dir)), test_speaker, validation_fraction, seed)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    if synthetic_per_digit > 0:
        folder = Path(synthetic_dir) if synthetic_dir is not None else output / "espeak-digits"
        splits["train"].extend(synthetic_digit_rows(folder, synthetic_per_digit, seed, synthetic_accents))
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
    parser.add_argument("--synthetic_per_digit", type=int, default=0,
                        help="add this many espeak-ng clips of each digit to the training split (needs espeak-ng)")
    parser.add_argument("--synthetic_dir", default=None, help="where the generated clips go (default: in output_dir)")
    parser.add_argument("--synthetic_accents", action="store_true",
                        help="let voices of other languages read the digits too (ACCENT_VOICES)")
    args = parser.parse_args()
    for name, path in prepare_fsdd(args.recordings_dir, args.output_dir, args.test_speaker,
                                   args.validation_fraction, args.seed, args.synthetic_per_digit,
                                   args.synthetic_dir, args.synthetic_accents).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
