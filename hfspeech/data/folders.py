"""Listing an audio folder: every file found is either used, with a label, or reported with the reason.

The layouts (docs/errors.md, "Audio folders"):

- `root/<label>/*.wav`: the folder holding a file is its label;
- `root/<split>/<label>/*.wav`, when *every* top-level folder is named as a split (`train`, `validation`,
  `valid`, `dev`, `val`, `test`, `eval` ...) and holds label folders, not audio. A folder named `train` or
  `test` that holds audio files is a class like any other (sound-event sets have such classes), and a
  split word in a *file* name means nothing;
- nested folders (`root/<label>/<speaker>/*.wav`): which folder is the label is the user's choice, so
  without `label_depth` this is an error saying so; `label_depth=1` takes the first folder under the root
  (or split), `2` the second, and so on. A manifest is the other way.
- Google Speech Commands (`data.speech_commands`): without split folders, `validation_list.txt` /
  `testing_list.txt` at the root give the validation and test splits, every other file is train; a root
  `_background_noise_` folder is no class (ignored, with the `--noise_dir` that uses it).

Audio is recognised by extension (`AUDIO_EXTENSIONS`, case-insensitive, `.m4a` and `.aif` included, which
datasets' audiofolder builder drops). Symbolic links are followed; one to nothing (dangling, a loop) named as audio
is listed for decoding to name (an error, or skipped and counted with `--skip_bad_files`); one named as a folder is
(no extension) may have been a class folder, and the listing is refused naming it (a `FolderLayoutError`); one
named as another file (`LICENSE.txt`) is ignored as that file would be. Files that are not audio, hidden files
(`.DS_Store`, `._x.wav` macOS forks) and `__*` folders are ignored and reported.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hfspeech.data.audio import AUDIO_EXTENSIONS, AudioFileError, check_audio_path
from hfspeech.path_names import NOT_UTF8, is_utf8, not_utf8_problem, shown_name
from hfspeech.data.speech_commands import list_files, set_background_noise_aside, split_by_lists
from hfspeech.errors import DataError

SPLIT_FOLDERS = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "dev": "validation", "val": "validation",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
# What makes datasets' audiofolder builder read a folder its own way (their columns replace folder labels).
DATASETS_LAYOUT_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet", ".huggingface.yaml")

DESCRIPTION = "dataset description"  # the reason a folder's README.md or dataset_info.json is ignored


class FolderLayoutError(DataError):
    """A folder whose layout does not say which files have which label; the message says what to change."""


@dataclass
class FolderListing:
    """An audio folder's files by split, each with its label, and what was ignored (path, reason)."""

    splits: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    ignored: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def uses_datasets_layout(root: Path) -> bool:
    """A metadata file (in the folder or in a split folder, `train/metadata.csv`: datasets' layout for splits)
    or a dataset card with `configs`: datasets' own rules decide what the folder holds. A split folder's metadata
    was missed, and its clips were labelled `train` and `test` by their folders. The first look into the folder: one
    this user may not read (or a split folder, or its README) is a `FolderLayoutError` naming it, not a traceback."""
    try:
        folders = [root] + [Path(sub.path) for sub in _sorted_entries(str(root))
                            if sub.name.lower() in SPLIT_FOLDERS and sub.is_dir()]
        if any((folder / name).exists() for folder in folders for name in DATASETS_LAYOUT_FILES):
            return True
        readme = root / "README.md"
        if readme.is_file():
            text = readme.read_text(encoding="utf-8", errors="replace")
            header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
            return "configs:" in header
    except OSError as error:  # `exists` in a split folder this user may not search, a README it may not read
        raise FolderLayoutError(f"{error.filename or root}: cannot be read ({error.strerror or error})") from None
    return False


def refuse_guessed_labels(paths) -> None:
    """Of the files a walk listed (`walk_audio_files`, which skips the hidden and `__*` folders datasets skips
    too), each `metadata.csv` with a `label` column: datasets' audiofolder reads it with pandas' type guessing,
    which changes labels (`01` and `1` both 1.0: one class; `NA`, `None`, `null` empty): a `FolderLayoutError`
    saying to give it as a manifest, which keeps them as written. So is any `metadata.csv` Excel saved in a form
    the builder cannot read (Windows-1252, UTF-16, `;` or tabs), which ended in its traceback."""
    for path in sorted(path for path in paths if Path(path).name == "metadata.csv"):
        _refuse_guessed_labels(Path(path))


def _refuse_guessed_labels(path: Path) -> None:
    import pandas as pd

    try:  # read once, parsed twice: as written, and as datasets' audiofolder builder reads it
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeError as error:  # Excel's "CSV" (Windows-1252) or "Unicode Text" (UTF-16): datasets' traceback
        raise FolderLayoutError(f"{path}: not UTF-8 ({error.reason} at byte {error.start}); save it as CSV UTF-8 "
                                "(Excel: Save As > CSV UTF-8 (Comma delimited))") from None
    header = next(csv.reader([text.partition("\n")[0]]), [])
    _refuse_other_separators(path, header)
    try:
        if "label" not in header:
            return
        written = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)["label"].tolist()
        guessed = pd.read_csv(io.StringIO(text))["label"].tolist()
    except (ValueError, KeyError):  # not CSV pandas reads: datasets' builder says so, as before
        return
    changed = next(((w, g) for w, g in zip(written, guessed) if w != ("" if pd.isna(g) else str(g))), None)
    if changed is not None:
        raise FolderLayoutError(f"{path}: datasets' audiofolder guesses the type of the 'label' column and reads "
                                f"{changed[0]!r} as {changed[1]!r} ('01' and '1' become one class, 'NA' no label); "
                                f"give the file as a manifest, which keeps labels as written: --train_file {path} "
                                "--path_column_name file_name")


def _refuse_other_separators(path: Path, header: list[str]) -> None:
    """A metadata.csv whose header has no `file_name` column read with commas but has one read with `;` or a tab
    (European Excel, "Text (Tab delimited)"): datasets' builder reads commas only and stopped on a traceback
    ("file_name ... must be present"). hfspeech's manifests read all three."""
    if any(name.strip().endswith("file_name") for name in header):
        return
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        cells = [cell.strip() for cell in ",".join(header).split(separator)]
        if any(cell.endswith("file_name") for cell in cells):
            raise FolderLayoutError(f"{path}: its cells are separated by {name}, and datasets' audiofolder reads "
                                    f"commas only; give it as a manifest, which reads either: --train_file {path} "
                                    "--path_column_name file_name")


def walk_audio_files(root: Path) -> tuple[list[tuple[tuple[str, ...], str]], list[dict[str, str]]]:
    """Every audio file under `root` as (folder names from the root, path), symlinks followed once, and the
    entries ignored with the reason. A link leading to nothing is listed whatever its name (`_entry_kind`)."""
    audio, ignored = [], []
    seen = {os.path.realpath(root)}
    pending = [((), str(root))]
    while pending:
        parts, folder = pending.pop()
        for entry in _sorted_entries(folder):
            if reason := _ignore_reason(entry):
                ignored.append({"path": entry.path, "reason": reason})
            elif (kind := _entry_kind(entry)) == "folder":  # symbolic links to folders followed
                real = os.path.realpath(entry.path)
                if real in seen:
                    ignored.append({"path": entry.path, "reason": "a link to a folder listed already"})
                else:
                    seen.add(real)
                    pending.append(((*parts, entry.name), entry.path))
            elif Path(entry.name).suffix.lower() in AUDIO_EXTENSIONS or (kind == "broken" and "." not in entry.name):
                audio.append((parts, entry.path))  # a link to nothing: decoding (or `refuse_broken_links`) names it
            else:
                ignored.append({"path": entry.path, "reason": "not an audio file (by its extension)"})
    return sorted(audio, key=lambda item: item[1]), ignored


def _sorted_entries(folder: str) -> list[os.DirEntry]:
    """A folder's entries by name; one that cannot be read (permission denied) is a `FolderLayoutError` naming it:
    it was a traceback in training, and `rglob` (the held-out folders' listing before) skipped it without a word."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as error:
        raise FolderLayoutError(f"{folder}: cannot be read ({error.strerror or error})") from None


def _entry_kind(entry: os.DirEntry) -> str:
    """'folder' (a link to one too), 'file', or 'broken': a link to nothing, its target gone (`is_dir` False: a class
    folder's link was 'not an audio file', the class dropped) or a loop (`notes -> notes`: ELOOP, a traceback)."""
    try:
        if entry.is_dir():
            return "folder"
        if entry.is_symlink():
            entry.stat()  # cached by `is_dir` where the link leads somewhere
    except OSError:
        return "broken"
    return "file"


def _ignore_reason(entry: os.DirEntry) -> Optional[str]:
    if entry.name.startswith("."):
        return "hidden"
    if entry.name.startswith("__") and _entry_kind(entry) == "folder":
        return "folder named __*"
    if entry.name in ("README.md", "dataset_info.json"):
        return DESCRIPTION
    return None


def list_audio_folder(root: Path, label_depth: Optional[int] = None) -> FolderListing:
    """Files by split with their labels, as the layouts in the module docstring say; a layout error otherwise."""
    audio, ignored = walk_audio_files(root)
    refuse_broken_links(audio)
    listing = FolderListing(ignored=ignored)
    audio = set_background_noise_aside(root, audio, listing.ignored, listing.notes)  # Speech Commands' noise: no class
    loose = [path for parts, path in audio if not parts]
    if loose:
        raise FolderLayoutError(
            f"{root}: {len(loose)} audio file(s) directly in the folder have no label "
            f"(e.g. {shown_name(Path(loose[0]).name)}); "
            "put each class's files in a folder named after the label (root/<label>/*.wav)")
    if not audio:
        raise FolderLayoutError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in the folder")
    _refuse_names_not_utf8(root, [path for _, path in audio])
    for split, files in _split_folders(root, audio, listing).items():
        listing.splits[split] = _labelled(root, files, label_depth, listing.notes)
    # shown with their bytes (`\xe9`): data_report.json wrote the surrogate `\udce9`, no name on any disk
    listing.ignored = [{**entry, "path": entry["path"] if is_utf8(entry["path"]) else shown_name(entry["path"])}
                       for entry in listing.ignored]
    return listing


def refuse_broken_links(audio) -> None:
    """A listed link to nothing not named as audio (`data/2 -> /mnt/gone/2`): maybe a class folder, not a bad clip."""
    for path in (path for _, path in audio if Path(path).suffix.lower() not in AUDIO_EXTENSIONS):
        try:
            check_audio_path(path)
        except AudioFileError as error:
            raise FolderLayoutError(f"{error}; mend or remove the link (if it was a class folder, that class's clips "
                                    "are missing)") from None


def _refuse_names_not_utf8(root: Path, paths: list[str]) -> None:
    """A file or folder name that is not UTF-8 (Latin-1 or cp437 bytes from an old archive: `caf\\xe9`) ends up
    a str Arrow cannot store (Python keeps the bytes as surrogates): training stopped with a traceback deep in
    datasets. A `FolderLayoutError` names the first such path, its bytes shown, and how to rename them; under an
    ASCII locale (LC_ALL=C, PYTHONUTF8=0) UTF-8 names are read so too, and renaming them would not help: the error
    says how to run (`path_names.not_utf8_problem`)."""
    bad = [path for path in paths if not is_utf8(path)]
    if bad and not (problem := not_utf8_problem(bad[0])).startswith(NOT_UTF8):  # UTF-8, in an ASCII locale
        raise FolderLayoutError(f"{shown_name(bad[0])}: {problem} ({len(bad)} such file(s))")
    if bad:
        raise FolderLayoutError(f"{shown_name(bad[0])}: {NOT_UTF8} ({len(bad)} such file(s), e.g. Latin-1 from an "
                                f"old archive); rename them to UTF-8, e.g. `convmv -f latin1 -t utf8 -r --notest {root}`")


def _split_folders(root: Path, audio, listing: FolderListing) -> dict[str, list]:
    """{split: [(folders below the split folder, path)]}: split folders only where the layout is unambiguous;
    without them, Speech Commands' `validation_list.txt` / `testing_list.txt` where the root has them."""
    notes = listing.notes
    top = {}
    for parts, path in audio:
        top.setdefault(parts[0], []).append((parts[1:], path))
    holds_audio = {name for name, files in top.items() if any(not parts for parts, _ in files)}
    split_like = {name for name in top if name.lower() in SPLIT_FOLDERS and name not in holds_audio}
    if not split_like:
        named = sorted(name for name in top if name.lower() in SPLIT_FOLDERS)
        if named:
            notes.append(f"folder(s) {named} hold audio files, so they are classes, not splits")
        files = [((name, *parts), path) for name, files in top.items() for parts, path in files]
        try:
            listed = split_by_lists(root, files, notes, listing.ignored)
        except DataError as error:  # a list's mistake, as every other layout mistake (`inference.agreement`)
            raise FolderLayoutError(str(error)) from None
        return listed or {"train": files}
    if split_like != set(top):
        others = sorted(set(top) - split_like)
        raise FolderLayoutError(
            f"{root}: split folder(s) {sorted(split_like)} (holding label folders) beside class folder(s) "
            f"{others[:5]}: put every class folder inside the split folders, or give the splits as manifests "
            "(--train_file/--validation_file/--test_file)")
    if lists := sorted(path.name for path in list_files(root).values()):
        notes.append(f"the split folders {sorted(split_like)} give the splits; {', '.join(lists)} not read")
    splits: dict[str, list] = {}
    keywords = list(SPLIT_FOLDERS)  # datasets' order: the files of `validation`, then `valid`, `dev`, `val` ...
    for name in sorted(top, key=lambda name: (keywords.index(name.lower()), name)):
        splits.setdefault(SPLIT_FOLDERS[name.lower()], []).extend(sorted(top[name], key=lambda item: item[1]))
    return {split: splits[split] for split in ("train", "validation", "test") if split in splits}


def _labelled(root: Path, files, label_depth: Optional[int], notes: list[str]) -> list[tuple[str, str]]:
    """(path, label) for each file: the folder at `label_depth` below the split root, or the only folder."""
    depths = {len(parts) for parts, _ in files}
    if label_depth is None:
        if depths == {1}:
            return [(path, parts[0]) for parts, path in files]
        parts, path = max(files, key=lambda item: len(item[0]))
        raise FolderLayoutError(
            f"{root}: audio files are nested {max(depths)} folders deep "
            f"(e.g. {shown_name(os.path.relpath(path, root))}), so "
            f"which folder is the label is not clear: pass --label_depth 1 to label by the first folder "
            f"({parts[0]!r}) or --label_depth {len(parts)} for the folder holding the file ({parts[-1]!r}), or "
            "list the files and labels in a manifest (--train_file)")
    if label_depth < 1:
        raise FolderLayoutError(f"--label_depth {label_depth}: must be 1 or more (1 = the first folder)")
    shallow = [path for parts, path in files if len(parts) < label_depth]
    if shallow:
        depth = len(Path(os.path.relpath(shallow[0], root)).parts) - 1
        raise FolderLayoutError(f"{shown_name(shallow[0])}: only {depth} "
                                f"folder(s) deep, but --label_depth {label_depth} takes the label from folder "
                                f"{label_depth} ({len(shallow)} such file(s))")
    if depths != {label_depth}:
        notes.append(f"labels are the folders at depth {label_depth}; deeper folders group files within a label")
    return [(path, parts[label_depth - 1]) for parts, path in files]
