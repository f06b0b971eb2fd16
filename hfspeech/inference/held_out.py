"""The held-out clips a converted model is measured on (`export --eval_dir`, `stage --eval_dir`): an audio folder
read as `hfspeech train` reads one, or a manifest read as training reads one, each clip checked to decode.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from hfspeech.data.audio import AudioFileError
from hfspeech.data.manifests import (MANIFEST_FORMATS, ManifestError, column_named, listed_files, manifest_folder,
                                     read_manifest)
from hfspeech.errors import HfspeechError, first_few

logger = logging.getLogger("hfspeech.data")


class HeldOutError(HfspeechError, ValueError):
    """A held-out folder that cannot be measured on: missing, empty, a label the model lacks, bad files."""


def labelled_clips(folder: str | Path, known_labels: Optional[set[str]], label_depth: Optional[int] = None,
                   skip_bad_files: bool = False, flag: str = "--eval_dir") -> tuple[list[str], list[str]]:
    """Paths and labels of a held-out folder read as `hfspeech train` reads one (`list_audio_folder`: split
    folders, `--label_depth`, hidden files ignored), so the folder a run trained on can be measured by `export`'s
    int8 gate and `stage --eval_dir` (`<label>/session2/*.wav` was refused as label 'session2'). A missing folder,
    one without audio, or a label the model lacks (matched by `written_form`, as training writes labels) is a
    `HeldOutError` naming it. `known_labels` None: a multi-label model's clips (timed by stage, compared on label
    decisions by the gate), in any layout, their labels '' (`label_depth` refused: it would be ignored). A manifest
    (`manifest_clips`) is read as training reads one: a held-out speaker's `test.csv` needed a folder of links."""
    from hfspeech.data.folders import FolderLayoutError, list_audio_folder, walk_audio_files
    from hfspeech.data.labels import written_form

    root = Path(folder)
    given_manifest = is_manifest(root)
    if given_manifest:
        clips = manifest_clips(root, known_labels is not None, label_depth, flag)
    elif not root.is_dir():
        raise HeldOutError(f"{flag} {folder}: {'not a folder' if root.exists() else 'not found'}; expected an audio "
                           "folder DIR/<label>/*.wav or a manifest (.csv, .tsv, .json, .jsonl: path,label)")
    elif known_labels is None and label_depth:
        raise HeldOutError(f"--label_depth: {flag} of a multi-label model is read as any audio folder, its folder "
                           "names unread (they are not label sets)")
    elif known_labels is None:
        clips = [(path, "") for _, path in walk_audio_files(root)[0]]  # linked folders followed, as in training
    else:
        try:
            listing = list_audio_folder(root, label_depth)
        except FolderLayoutError as error:  # the train message, naming the flag: nesting, loose files, names
            raise HeldOutError(f"{flag}: {error}".replace(
                ", or list the files and labels in a manifest (--train_file)", "")) from None
        clips = [clip for files in listing.splits.values() for clip in files]
    if not clips:
        raise HeldOutError(f"{flag} {folder}: no audio files to measure on (expected DIR/<label>/*.wav)")
    if known_labels is None:
        clips = _decodable(clips, flag, skip_bad_files)
        return [path for path, _ in clips], [label for _, label in clips]
    model_label = {written_form(label): label for label in known_labels}
    unknown = next((clip for clip in clips if written_form(clip[1]) not in model_label), None)
    if unknown is not None:
        where = ("its `label` column" if given_manifest else
                 f"the folder at --label_depth {label_depth}" if label_depth else "its folder")
        raise HeldOutError(f"{flag} {unknown[0]}: label {unknown[1]!r} ({where}) is not one of the model's labels "
                         f"({first_few(sorted(known_labels), 10)})")
    clips = _decodable(clips, flag, skip_bad_files)
    return [path for path, _ in clips], [model_label[written_form(label)] for _, label in clips]


def is_manifest(path: str | Path) -> bool:
    """Whether a held-out path names a manifest (.csv, .tsv, .json, .jsonl, not a folder so named), the one test
    `labelled_clips` reads it by and `stage` cards it by ("the `--eval_dir` manifest")."""
    return Path(path).suffix.lower() in MANIFEST_FORMATS and not Path(path).is_dir()


def _decodable(clips: list[tuple[str, str]], flag: str, skip_bad_files: bool) -> list[tuple[str, str]]:
    """The clips that decode, checked before anything is written or exported (at the price of decoding each once
    more): a bad one met while measuring stopped `export` with its int8 file unchecked. The bad ones are an error
    naming the first and how to go on, or with `skip_bad_files` dropped and counted in one warning, as in training."""
    from hfspeech.data.audio import decode_audio

    kept, bad = [], []
    for path, label in clips:
        try:
            decode_audio(path, 16000)
            kept.append((path, label))
        except AudioFileError as error:
            bad.append(error)
    if bad and not skip_bad_files:
        raise HeldOutError(f"{flag}: {len(bad)} of its {len(clips)} audio files cannot be used (e.g. {bad[0]}); "
                         "--skip_bad_files skips such files, counted")
    if bad:
        logger.warning("data: %s: skipped %d bad file(s) (--skip_bad_files; e.g. %s)", flag, len(bad), bad[0])
    if not kept:
        raise HeldOutError(f"{flag}: none of its {len(clips)} audio files could be decoded (e.g. {bad[0]})")
    return kept


def manifest_clips(manifest: Path, labelled: bool, label_depth: Optional[int], flag: str) -> list[tuple[str, str]]:
    """(path, label) of each row of a CSV/TSV/JSON(L) manifest (its `path` and `label` columns, letter case aside;
    paths relative to its folder, as training reads them); labels '' for a multi-label model (`labelled` False)."""
    if label_depth:
        raise HeldOutError(f"--label_depth: {flag} {manifest} is a manifest, whose labels are its `label` column")
    try:
        rows, columns = read_manifest(str(manifest))
        path_column, label_column = (column_named(str(manifest), columns, name) for name in ("path", "label"))
        missing = [name for name in (path_column, label_column if labelled else None) if name and name not in columns]
        if missing:
            raise ManifestError(f"{manifest}: no {missing[0]!r} column (columns: {sorted(columns)})")
        files = listed_files(str(manifest), [str(row.get(path_column) or "") for row in rows],
                             manifest_folder(manifest))  # a linked manifest's folder: its target's, as train reads
    except ManifestError as error:
        raise HeldOutError(f"{flag}: {error}") from None
    unlabelled = next((file for file, row in zip(files, rows) if labelled and not str(row.get(label_column) or "")
                       .strip()), None)  # as training refuses it: a JSON null was read as the label 'None'
    if unlabelled is not None:
        raise HeldOutError(f"{flag} {manifest}: {unlabelled}: empty label (its `{label_column}` cell is empty or null)")
    return [(file, str(row.get(label_column)) if labelled else "") for file, row in zip(files, rows)]
