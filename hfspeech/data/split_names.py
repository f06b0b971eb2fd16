"""Which split of a `--dataset_name` dataset is train, validation and test.

transformers' `run_audio_classification.py` picks a Hub dataset's splits with `--train_split_name` and
`--eval_split_name`; hfspeech takes those and `--test_split_name` (the split a run is tested on at the end),
so that splits named `training` / `dev` / `eval` are used as they are, without renaming and saving a copy.

A role whose flag keeps its default takes the split of that name if the data has it, else the one split
with a usual other name (`SPLIT_ALIASES`); a missing validation or test split is then carved out of train
(`data.splits`), as before the flags. A name given that the data does not have, one split named for two
roles, and two splits that could each be the validation split (`dev` and `eval`: one of them was dropped
without a word) are one line listing the splits there are. Splits no role takes are left out, and said so; so
is a split given to another role than the one its name would give it (`--eval_split_name test`, the habit of
run_audio_classification.py, where it is the split evaluated), which leaves that role to be cut out of train.

A flag may also give datasets' slice syntax (`--train_split_name 'train[:80%]' --eval_split_name 'train[80%:]'`,
as run_audio_classification.py users do): cut from the loaded split by datasets' own rounding (`ReadInstruction`),
its rows viewed, not copied; a split that one flag slices is taken whole by no other role. With `--streaming`, slices
are refused in one line (a stream has no row count).

Audio folders and manifests have no such flags: an audio folder's split folders are read by their names
(`data.folders.SPLIT_FOLDERS`: train/training, dev/val/valid, test/testing/eval/evaluation ...), and manifests
are named per split (`--train_file`, `--validation_file`, `--test_file`); the flags are refused with them.
"""

from __future__ import annotations

from typing import Optional, Sequence

from hfspeech.errors import DataError, UsageError

# Each role's keyword argument (flag, `DataArguments` field); its default is the role's own name.
SPLIT_NAME_ARGUMENTS = {"train": "train_split_name", "validation": "eval_split_name", "test": "test_split_name"}
ROLE_FLAGS = {role: f"--{argument}" for role, argument in SPLIT_NAME_ARGUMENTS.items()}
SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "validation"}
# What each role's split is for, as a note that gives a split to another role than its name's says it.
ROLE_PURPOSES = {"train": "the one trained on", "validation": "the one that picks the best checkpoint",
                 "test": "the one the finished run is tested on"}


def given_split_names(train: str = "train", validation: str = "validation", test: str = "test") -> dict[str, str]:
    """{role: split} for the flags that name another split than their default (the role's own name)."""
    return {role: name for role, name in (("train", train), ("validation", validation), ("test", test))
            if name != role}


def given_in(source: dict) -> dict[str, str]:
    """`given_split_names` of the keyword arguments of `data.loading.load_audio_dataset` (`DataSpec.source`)."""
    return given_split_names(**{role: source.get(argument, role) for role, argument in SPLIT_NAME_ARGUMENTS.items()})


def split_name_arguments(given: dict[str, str]) -> dict[str, str]:
    """The keyword arguments (`SPLIT_NAME_ARGUMENTS`) of `given` ({role: split}), for `load_audio_dataset`."""
    return {SPLIT_NAME_ARGUMENTS[role]: name for role, name in given.items()}


def refuse_without_dataset(given: dict[str, str], dataset_name: Optional[str]) -> None:
    """The flags choose among a dataset's splits; audio folders and manifests name their splits otherwise."""
    if given and not dataset_name:
        flags = ", ".join(f"{ROLE_FLAGS[role]} {name}" for role, name in given.items())
        raise UsageError(f"{flags}: split names choose the splits of a --dataset_name dataset; an audio folder's "
                         "split folders are read by their names (train/training, validation/valid/val/dev, "
                         "test/testing/eval/evaluation) and manifests are given per split (--train_file, "
                         "--validation_file, --test_file)")


def is_slice(name: str) -> bool:
    """Whether a split name is datasets' slice syntax (`train[:80%]`, `train+validation`), which
    run_audio_classification.py users pass; no split is named with `[` or `+`."""
    return "[" in name or "+" in name


def slice_bases(name: str, flag: str = "") -> list[str]:
    """The dataset's splits that `name` reads: itself, or those of its slices; bad syntax is one line naming `flag`."""
    if not is_slice(name):
        return [name]
    from datasets import ReadInstruction

    try:
        return [part.splitname for part in ReadInstruction.from_spec(name)._relative_instructions]
    except (ValueError, AssertionError) as error:
        raise UsageError(f"{flag} {name}: neither a split nor datasets' slice of one ({error}); slices read "
                         "'train[:80%]', 'train[80%:]', 'train[:1000]' or 'train+validation'") from None


def slice_rows(name: str, sizes: dict[str, int], flag: str) -> list[tuple[str, int, int]]:
    """(split, first row, end row) of each part of the slice `name`, rounded as datasets rounds its percentages;
    a part without rows (`train[100%:]`) is one line naming `flag` (datasets' `select` raised an IndexError)."""
    from datasets import ReadInstruction

    parts = [(part.splitname, part.from_, part.to) for part in ReadInstruction.from_spec(name).to_absolute(sizes)]
    empty = next(((split, start) for split, start, end in parts if end <= start), None)
    if empty is not None:
        raise DataError(f"{flag} {name}: no rows of split '{empty[0]}' ({sizes[empty[0]]} rows) fall in this slice")
    return parts


def refuse_slices_streamed(given: dict[str, str]) -> None:
    """A stream has no row count to take a percentage of (nor rows to skip to): one line saying what to give."""
    sliced = [f"{ROLE_FLAGS[role]} {name}" for role, name in given.items() if is_slice(name)]
    if sliced:
        raise UsageError(f"{', '.join(sliced)}: split slices are cut from a loaded dataset, not a stream; with "
                         "--streaming name whole splits (a missing validation or test split is cut out of train by "
                         "--validation_split_percentage / --test_split_percentage), or leave out --streaming")


def choose_splits(available: Sequence[str], given: dict[str, str], source: str) -> dict[str, str]:
    """{role: the dataset's split} for each role the data has a split for; train is required."""
    available = list(available)
    for role, name in given.items():
        missing = [split for split in slice_bases(name, ROLE_FLAGS[role]) if split not in available]
        if missing:
            which = f"no split '{missing[0]}'" if is_slice(name) else "no such split"
            raise DataError(f"{ROLE_FLAGS[role]} {name}: {source} has {which}; its splits: {available}")
    named = list(given.values())
    sliced = {split for name in named if is_slice(name) for split in slice_bases(name)}  # not free for other roles
    twice = next((name for name in named if named.count(name) > 1), None)
    if twice is not None:
        flags = " and ".join(ROLE_FLAGS[role] for role, name in given.items() if name == twice)
        raise UsageError(f"{flags} both name the split '{twice}'; a split is used for one of train, validation "
                         "and test")
    chosen = dict(given)
    for role in [role for role in ROLE_FLAGS if role not in given]:
        free = [split for split in available if split not in named and split not in sliced]
        aliased = [role] if role in free else [split for split in free if SPLIT_ALIASES.get(split) == role]
        if len(aliased) > 1:
            raise DataError(f"{source}: the splits {aliased} could each be the {role} split; choose one with "
                            f"{ROLE_FLAGS[role]} (and test on another with --test_split_name)")
        if aliased:
            chosen[role] = aliased[0]
        elif role == "train" and "train" in sliced:
            slices = ", ".join(name for name in named if is_slice(name))
            raise UsageError(f"{source}: another flag takes a slice of 'train' ({slices}); give the part trained on "
                             "as a slice too, e.g. --train_split_name 'train[:80%]' --eval_split_name 'train[80%:]'")
        elif role == "train":
            raise DataError(f"{source}: training needs a train split; its splits: {available} (name it with "
                            "--train_split_name; validation and test splits with --eval_split_name, --test_split_name)")
    return {role: chosen[role] for role in ROLE_FLAGS if role in chosen}


def split_notes(chosen: dict[str, str], given: dict[str, str], sizes: dict[str, Optional[int]],
                source: str) -> list[str]:
    """What a run's data report says about the choice (`given`: the flags'): splits found under another name
    than their role's, a split given to another role than its name's (`role_taken_notes`), splits left out."""
    notes = [f"{source}: split '{split}' is the {role} split ({ROLE_FLAGS[role]} to choose another)"
             for role, split in chosen.items() if split != role and role not in given]
    notes += role_taken_notes(chosen, given, list(sizes), source)
    used = {split for name in chosen.values() for split in slice_bases(name)}
    for split, size in sizes.items():
        if split not in used:
            rows = "" if size is None else f" ({size} rows)"
            notes.append(f"{source}: split '{split}'{rows} is not used (choose splits with --train_split_name, "
                         "--eval_split_name, --test_split_name)")
    return notes


def role_taken_notes(chosen: dict[str, str], given: dict[str, str], available: Sequence[str],
                     source: str) -> list[str]:
    """A split a role would have found by its name (`test`, `validation`/`dev` ...), given by a flag to another
    role, leaves that role to be cut out of train: said in one line. `--eval_split_name test` is how
    run_audio_classification.py is told the split to evaluate; here it made the data's test split the one that
    picks the best checkpoint and tested the run on clips cut out of train, without a word. Not refused: the
    flags name one split each, and choosing so on purpose is a run's right."""
    notes = []
    for role in [role for role in ("validation", "test") if role not in chosen]:
        by_name = [role] if role in available else [split for split in available if SPLIT_ALIASES.get(split) == role]
        taker = next((other for other, split in given.items() if by_name == [split]), None)
        if taker is None:
            notes += sliced_role_notes(role, by_name, given, source)
            continue
        split = given[taker]
        notes.append(f"{source}: split '{split}' is the {taker} split ({ROLE_FLAGS[taker]} {split}: "
                     f"{ROLE_PURPOSES[taker]}), so the {role} split ({ROLE_PURPOSES[role]}) "
                     f"is cut out of train by --{role}_split_percentage (0: none; {ROLE_FLAGS[role]} names another "
                     f"split); without {ROLE_FLAGS[taker]}, '{split}' is the {role} split")
    return notes


def sliced_role_notes(role: str, by_name: list[str], given: dict[str, str], source: str) -> list[str]:
    """A role's own split read by another role's slice (`--train_split_name train+validation`): the role is cut out
    of that slice, and `--eval_split_name validation`, the flag's default, cannot be told from no flag, so an
    explicit one was ignored without a word. Said, not refused: training on all of it (`--validation_split_percentage
    0`) or with a part of it held out is a run's right."""
    taker = next((other for other, name in given.items() if is_slice(name) and set(by_name) & set(slice_bases(name))),
                 None)
    if taker is None or len(by_name) != 1:
        return []
    split, name = by_name[0], given[taker]
    even = f", even with {ROLE_FLAGS[role]} {split}" if split == role else ""  # a flag left at its default
    return [f"{source}: split '{split}' is read by {ROLE_FLAGS[taker]} {name} ({ROLE_PURPOSES[taker]}), so the {role} "
            f"split ({ROLE_PURPOSES[role]}) is cut out of it by --{role}_split_percentage (0: none){even}; to use "
            f"'{split}' as the {role} split, leave it out of {ROLE_FLAGS[taker]}"]
