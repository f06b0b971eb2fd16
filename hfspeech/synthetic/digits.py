"""Spoken digits ("zero" .. "nine") from espeak-ng, as extra training voices for a digit classifier.

Three or four recorded speakers are few voices to learn a digit from; a small model trained on them learns the
voices as much as the words. espeak-ng speaks the same words in many voices, variants, pitches and speeds
(`hfspeech.synthetic.espeak`), offline and reproducibly, so its clips can be added to the training split (the
evaluation split stays recorded speech). The clips are written by `generate_keyword_dataset` (same seed, same
bytes) and listed in a manifest whose labels are the digits ("0" .. "9", as in FSDD) and whose speaker column
says ``espeak-ng``, so `--group_column speaker` keeps them out of the held-out group.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional, Sequence

from hfspeech.errors import DataError, writing_to
from hfspeech.models.label_words import DIGIT_WORDS
from hfspeech.synthetic.espeak import ESPEAK_VOICES
from hfspeech.synthetic.reuse import already_holds, refuse_users_folder
from hfspeech.synthetic.spoken import generate_keyword_dataset

SPEAKER = "espeak-ng"


def generate_spoken_digits(output_dir, clips_per_digit: int = 100, sampling_rate: int = 8000,
                           clip_seconds: float = 1.0, noise_snr_db: Optional[tuple[float, float]] = None,
                           seed: int = 0, progress: bool = False, voices: Sequence[str] = ESPEAK_VOICES,
                           speaker: str = SPEAKER) -> Path:
    """Write the clips (idempotently) and ``output_dir/manifest.csv`` (path,label,speaker; absolute paths);
    returns the manifest. ``voices``: the espeak-ng voices drawn from (`generate_keyword_dataset`). A folder of
    the user's is refused before anything is written (it holds nothing but the generated `clips`); a finished one
    is reused without a write (a read-only one too)."""
    root = Path(output_dir).resolve()
    manifest, text = root / "manifest.csv", _manifest_text(root / "clips", clips_per_digit, speaker)
    manifest_written = already_holds(manifest, text.encode("utf-8"))  # generating the clips leaves it as it is
    if not manifest_written:  # something to write: into a folder of ours only
        refuse_users_folder(root, lambda name: name == "clips", "spoken digits")
    generate_keyword_dataset(root / "clips", keywords=DIGIT_WORDS, clips_per_keyword=clips_per_digit,
                             sampling_rate=sampling_rate, clip_seconds=clip_seconds, noise_snr_db=noise_snr_db,
                             seed=seed, progress=progress, voices=voices)
    if not manifest_written:
        with writing_to(root, "make room and run it again"):
            manifest.write_text(text, encoding="utf-8", newline="")
    return manifest


def _manifest_text(clips: Path, clips_per_digit: int, speaker: str) -> str:
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")
    writer.writerow(["path", "label", "speaker"])
    for digit, word in enumerate(DIGIT_WORDS):
        for index in range(clips_per_digit):
            writer.writerow([str(clips / word / f"{word}_{index:04d}.wav"), str(digit), speaker])
    return lines.getvalue()


def merge_manifests(first, second, output) -> Path:
    """``output``: the rows of two path,label,... manifests with the same header (a training split and the
    generated digits); a clear error when the headers differ."""
    rows = []
    header = None
    for path in (first, second):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            this_header = next(reader, None)
            if header is not None and this_header != header:
                raise DataError(f"{path}: columns {this_header} differ from {first}'s {header}")
            header = this_header
            rows.extend(reader)
    output = Path(output)
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return output
