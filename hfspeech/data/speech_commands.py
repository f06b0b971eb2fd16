"""Google Speech Commands' folder layout (v0.01, v0.02), read as a keyword-spotting user expects it.

The download holds `<word>/<speaker-hash>_nohash_<n>.wav`, `_background_noise_/` (long noise recordings, not a
word), and `validation_list.txt` / `testing_list.txt`: one `word/file.wav` a line, relative to the root, the
official split, speaker-disjoint by hash (transformers' superb/ks, torchaudio and SpeechBrain all honour it).
Read as a plain audio folder, `_background_noise_` became a class, the lists were ignored (not audio) and the
splits were carved at random by file, putting one speaker's clips in train and test. Here:

- the lists define the validation and test splits, every other file of a label folder is train
  (`split_by_lists`); lines naming files the folder lacks (a user who kept 10 of the 35 words) are counted in
  the listing's note, and a line that cannot name a file of a label folder is a `DataError` with its number;
- `_background_noise_` at the root is set aside with the `--noise_dir` that mixes it in (`set_background_noise_aside`);
- file names `<hash>_nohash_<n>` give each clip's speaker as its group (`with_speaker_groups`): splits without a
  list are carved by whole speakers, as the lists were made (by file where whole speakers would hold out labels
  train lacks: a folder per speaker is speaker ID, the speaker its label).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Optional

from hfspeech.data.audio import AUDIO_EXTENSIONS
from hfspeech.errors import DataError, first_few

SPLIT_LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}
BACKGROUND_NOISE_FOLDER = "_background_noise_"
SPEAKER_MARK = "_nohash_"  # `<speaker-hash>_nohash_<n>.wav`: the hash names the speaker
LISTS_NOTE = "splits from the Speech Commands lists"  # how the data report's notes say which way splits were made
SPEAKER_CARVE_NOTE = "carved by whole speakers"


def split_method(notes: list[str], group_column: Optional[str] = None) -> str:
    """How the held-out splits were made, read from the data report's notes: "lists" (Speech Commands' own),
    "speaker_groups" (carved by whole `<speaker>_nohash_` speakers), "group_column", joined by "+" where
    several decided; "random" otherwise (carved by file, or given). Recorded in run_inputs.json: a resume that
    would split another way holds out other clips; the model card says how the test split was held out."""
    methods = [method for method, said in (("lists", any(note.startswith(LISTS_NOTE) for note in notes)),
                                           ("speaker_groups", any(SPEAKER_CARVE_NOTE in note for note in notes)),
                                           ("group_column", bool(group_column))) if said]
    return "+".join(methods) or "random"


def list_files(root: Path) -> dict[str, Path]:
    """{split: list file} of the split lists the root holds."""
    return {split: root / name for split, name in SPLIT_LISTS.items() if (root / name).is_file()}


def set_background_noise_aside(root: Path, audio: list, ignored: list[dict[str, str]], notes: list[str]) -> list:
    """`audio` ((folders, path) pairs) without the files of a root `_background_noise_` folder, each one added to
    `ignored` with the flag that uses them: they are minute-long noise recordings, not a word, and as a class
    they were a seventh of a model's labels, trained on 1-s crops of noise."""
    noise = [path for parts, path in audio if parts[:1] == (BACKGROUND_NOISE_FOLDER,)]
    if not noise:
        return audio
    folder = root / BACKGROUND_NOISE_FOLDER
    uses = f"--noise_dir {folder} mixes it into training"  # said whether or not given: the data never sees flags
    ignored.extend({"path": path, "reason": f"background noise, not a class ({uses})"} for path in noise)
    notes.append(f"{BACKGROUND_NOISE_FOLDER}/ ({len(noise)} file(s)) is not used as a class ({uses})")
    return [(parts, path) for parts, path in audio if parts[:1] != (BACKGROUND_NOISE_FOLDER,)]


def split_by_lists(root: Path, files: list, notes: list[str],
                   ignored: list[dict[str, str]]) -> Optional[dict[str, list]]:
    """{split: [(folders, path)]} with `validation` and `test` the files the root's lists name, `train` the
    others, in `files`' order; None where the root has no list. A file named in both lists, a split left
    empty, or a line that cannot name a file of a label folder is a `DataError` naming the list. The lists'
    entries in `ignored` (not audio) say what they were used for."""
    given = list_files(root)
    if not given:
        return None
    listed = {split: _read_list(path) for split, path in given.items()}
    _refuse_in_both(listed, given)
    split_of = {name: split for split, names in listed.items() for name in names}
    splits: dict[str, list] = {"train": [], **{split: [] for split in given}}
    relative = [_relative(root, path) for _, path in files]  # once a file: 1.4 s of 105k files' 2.8 s
    for (parts, path), name in zip(files, relative):
        splits[split_of.get(name, "train")].append((parts, path))
    absent = sorted(set(split_of) - set(relative))
    _refuse_empty(root, given, splits)
    notes.append(_lists_note(given, splits, absent))
    used = {path: split for split, path in given.items()}
    for entry in ignored:
        if Path(entry["path"]) in used:
            entry["reason"] = f"Speech Commands split list: defines the {used[Path(entry['path'])]} split"
    return splits


def _refuse_empty(root: Path, given: dict[str, Path], splits: dict[str, list]) -> None:
    """A split the lists leave empty: a run without a validation or test split, or without training clips, stopped
    later and farther from the cause."""
    if not splits["train"]:
        raise DataError(f"{root}: every audio file is named in {' or '.join(p.name for p in given.values())}, "
                        "so none is left to train on")
    for split, path in given.items():
        if not splits[split]:
            raise DataError(f"{path}: names none of the folder's audio files, so the {split} split would be "
                            f"empty; move the list out of the folder to carve the {split} split at random")


def _relative(root: Path, path: str) -> str:
    """A listed file's path as a list line writes it: relative to the root, with '/'."""
    return PurePosixPath(*Path(os.path.relpath(path, root)).parts).as_posix()


def _read_list(path: Path) -> list[str]:
    """The relative paths a list names (blank lines skipped); an absolute path, a `..`, a backslash or a line
    that names no `folder/file.<audio>` is a `DataError` naming the list and the line number."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as a UTF-8 list of files ({error})") from None
    names = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            continue
        problem = _line_problem(name)
        if problem:
            raise DataError(f"{path}: line {number} ({name[:80]!r}) {problem}; each line is one "
                            "'word/file.wav', relative to the folder holding the list")
        names.append(PurePosixPath(name).as_posix())  # `./yes/a.wav` and `yes//a.wav` name `yes/a.wav`
    return names


def _line_problem(name: str) -> Optional[str]:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if "\\" in name:
        return "has a backslash (write folders with '/')"
    if ".." in name.split("/"):
        return "has '..', which leaves the folder"
    if len(PurePosixPath(name).parts) < 2:
        return "names no file inside a label folder"
    if PurePosixPath(name).suffix.lower() not in AUDIO_EXTENSIONS:
        return "does not name an audio file (by its extension)"
    return None


def _refuse_in_both(listed: dict[str, list[str]], given: dict[str, Path]) -> None:
    if len(listed) == 2:
        both = sorted(set(listed["validation"]) & set(listed["test"]))
        if both:
            raise DataError(f"{given['test']}: {both[0]} is also in {given['validation'].name} ({len(both)} such "
                            "file(s)); a clip can be in one held-out split only")


def _lists_note(given: dict[str, Path], splits: dict[str, list], absent: list[str]) -> str:
    """The one note saying where the splits come from, and the listed files the folder does not hold."""
    counts = ", ".join(f"{split} {len(splits[split])} ({given[split].name})" for split in given)
    note = (f"{LISTS_NOTE}: {counts}, train {len(splits['train'])} (every other file); "
            "--validation_split_percentage / --test_split_percentage apply only to a split without a list")
    if absent:
        note += f"; {len(absent)} listed file(s) are not in the folder, left out (e.g. {first_few(absent, 3)})"
    return note


def with_speaker_groups(raw, source: dict, validation_fraction: float, test_fraction: float, report=None):
    """`raw` (a DatasetDict of an audio folder) with each clip's speaker as its `group` (`data.groups`) where
    every file is named `<speaker-hash>_nohash_<n>`: the splits it lacks are then carved by whole speakers, as
    the lists were made, and given splits sharing a speaker are warned about (`data.split_audit`). Clips held
    out by file put one speaker's other takes of the same word in train, and the test score flattered. Fewer
    than 3 speakers (one each for train, validation, test) are carved by file, with a note saying so; so are
    speakers whose whole-speaker splits would hold labels train lacks (`speaker_carve_kept`)."""
    from hfspeech.data.columns import column_values
    from hfspeech.data.groups import GROUP_COLUMN

    if not source.get("data_dir") or "train" not in raw:
        return raw
    speakers = {name: [_speaker(audio["path"]) for audio in column_values(split, "audio")]
                for name, split in raw.items()}
    if any(None in names for names in speakers.values()):
        return raw
    carved = [name for name, share in (("validation", validation_fraction), ("test", test_fraction))
              if name not in raw and share > 0]
    if carved and len(set(speakers["train"])) < 3:
        if report is not None:  # `DataReport.add_listing` logs the note and keeps it in data_report.json
            report.add_listing({}, [], [shared_speaker_note()])
        return raw
    return type(raw)({name: split.add_column(GROUP_COLUMN, speakers[name]) for name, split in raw.items()})


def speaker_carve_kept(carved: list[str], unseen: dict[str, list[str]], report=None) -> bool:
    """Whether splits carved by the speakers of `<speaker>_nohash_<n>` names stand (said in a note): not where
    they hold labels train lacks (`split_audit.unseen_carved_classes`; a folder per speaker is speaker ID, where
    the speaker is the label), since nobody asked for the grouping that would leave those labels untrained."""
    if carved and report is not None:
        labels = sorted({label for names in unseen.values() for label in names})
        report.add_listing({}, [], [untrained_labels_note(labels) if labels else
                                    f"{' and '.join(carved)} {SPEAKER_CARVE_NOTE} (the hash before "
                                    f"{SPEAKER_MARK} in the file names): no speaker is in two splits"])
    return not unseen


def _speaker(path: str) -> Optional[str]:
    """The `<speaker-hash>` of `<speaker-hash>_nohash_<n>.wav`; None for a file not named so."""
    speaker, mark, _ = Path(path).name.partition(SPEAKER_MARK)
    return speaker if mark and speaker else None


def shared_speaker_note() -> str:
    """Where too few speakers are named for whole-speaker splits: random splits put one speaker's clips in train
    and test, and the test score then flatters."""
    return (f"the clips are named <speaker>{SPEAKER_MARK}<n> (Speech Commands) but have fewer than 3 speakers and "
            f"no {SPLIT_LISTS['validation']} / {SPLIT_LISTS['test']}: the held-out splits are carved by file, so a "
            "speaker's clips can be in train and test; add the lists, or give a manifest with a speaker column "
            "and --group_column speaker")


def untrained_labels_note(unseen: list[str]) -> str:
    """Where whole-speaker splits would hold labels train lacks: said, with the grouping that does hold out voices."""
    return (f"the clips are named <speaker>{SPEAKER_MARK}<n> (Speech Commands), but held-out splits of whole speakers "
            f"would hold {len(unseen)} label(s) the train split has no clip of ({first_few(unseen)}; a folder per "
            "speaker is speaker ID, the speaker the label): the held-out splits are carved by file; to hold out "
            "recording sessions, give a manifest with a session column and --group_column session")
