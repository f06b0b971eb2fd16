"""Google Speech Commands' layout (`data.speech_commands`): the official lists give the validation and test splits,
`_background_noise_` is no class, and splits carved without lists keep each speaker (the hash before `_nohash_`)
on one side. Layouts are tiny generated copies of the download's: `<word>/<hash>_nohash_<n>.wav`, the two lists,
`_background_noise_/` with a README.md, LICENSE and README.md at the root."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import TINY_CNN, run_cli_output
from hfspeech.data.clip_digests import DIGEST_CHARS, TRAINING_CLIPS_FILE
from hfspeech.data.columns import column_values
from hfspeech.data.folders import FolderLayoutError, list_audio_folder
from hfspeech.data.labelled import DataSpec, load_evaluation_split, load_labelled_splits
from hfspeech.data.prepare import DataReport

WORDS = {"yes": 300.0, "no": 2500.0, "up": None}
SPEAKERS = ("0a7c2a8d", "1b2c3d4e", "9f8e7d6c", "c0ffee11", "d00dfeed")
VALIDATION_SPEAKER, TEST_SPEAKER = SPEAKERS[1], SPEAKERS[2]


def write_layout(root: Path, speakers=SPEAKERS, lists: bool = True, noise: bool = True, seconds: float = 0.3) -> Path:
    """Two takes of each word by each speaker; the lists hold one speaker each (as the official ones, disjoint)."""
    rng = np.random.default_rng(0)
    time = np.arange(int(16000 * seconds)) / 16000
    for word, frequency in WORDS.items():
        (root / word).mkdir(parents=True)
        for speaker in speakers:
            for take in range(2):
                tone = 0.3 * np.sin(2 * np.pi * frequency * time) if frequency else 0.3 * rng.standard_normal(len(time))
                sf.write(root / word / f"{speaker}_nohash_{take}.wav", tone + 0.01 * rng.standard_normal(len(time)),
                         16000)
    if noise:
        (root / "_background_noise_").mkdir()
        for name in ("white_noise", "running_tap"):
            sf.write(root / "_background_noise_" / f"{name}.wav", 0.1 * rng.standard_normal(5 * 16000), 16000)
        (root / "_background_noise_" / "README.md").write_text("Background noise recordings.\n")
    (root / "LICENSE").write_text("CC-BY-4.0\n")
    (root / "README.md").write_text("Speech Commands Data Set v0.02\n")
    if lists:
        write_list(root / "validation_list.txt", listed(VALIDATION_SPEAKER))
        write_list(root / "testing_list.txt", listed(TEST_SPEAKER))
    return root


def listed(speaker: str, words=WORDS) -> list[str]:
    return [f"{word}/{speaker}_nohash_{take}.wav" for word in words for take in range(2)]


def write_list(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def relative(root: Path, files) -> list[str]:
    return sorted(Path(path).relative_to(root).as_posix() for path, _ in files)


def spec_of(root: Path, tmp_path: Path, **percentages) -> DataSpec:
    return DataSpec(source={"data_dir": str(root), "cache_dir": str(tmp_path / "cache")}, **percentages)


def split_paths(split, root: Path) -> list[str]:
    return sorted(Path(audio["path"]).relative_to(root).as_posix() for audio in column_values(split, "audio"))


def test_the_lists_give_validation_and_test_and_every_other_file_is_train(tmp_path):
    root = write_layout(tmp_path / "sc")
    listing = list_audio_folder(root)
    assert relative(root, listing.splits["validation"]) == sorted(listed(VALIDATION_SPEAKER))
    assert relative(root, listing.splits["test"]) == sorted(listed(TEST_SPEAKER))
    others = [s for s in SPEAKERS if s not in (VALIDATION_SPEAKER, TEST_SPEAKER)]
    assert relative(root, listing.splits["train"]) == sorted(name for s in others for name in listed(s))
    assert [note for note in listing.notes if "validation_list.txt" in note and "testing_list.txt" in note]
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in listing.ignored}
    assert "test split" in reasons["testing_list.txt"] and "validation split" in reasons["validation_list.txt"]


def test_background_noise_is_no_class_and_its_reason_names_a_noise_dir_that_is_accepted(tmp_path):
    from hfspeech.training.arguments import DataArguments

    root = write_layout(tmp_path / "sc")
    listing = list_audio_folder(root)
    labels = {label for files in listing.splits.values() for _, label in files}
    assert labels == set(WORDS)
    noise = [entry for entry in listing.ignored if entry["path"].endswith("_noise.wav")
             or entry["path"].endswith("running_tap.wav")]
    assert len(noise) == 2 and all(f"--noise_dir {root / '_background_noise_'}" in e["reason"] for e in noise)
    # the flag the reason names takes the folder as it is, its README.md beside the noise files included
    DataArguments(data_dir=str(root), noise_dir=str(root / "_background_noise_"))


def test_listed_files_the_folder_lacks_are_counted_in_the_note(tmp_path):
    root = write_layout(tmp_path / "sc")
    write_list(root / "testing_list.txt", listed(TEST_SPEAKER) + listed(TEST_SPEAKER, ["bed", "cat"]))
    listing = list_audio_folder(root)
    assert relative(root, listing.splits["test"]) == sorted(listed(TEST_SPEAKER))
    note = next(note for note in listing.notes if "testing_list.txt" in note)
    assert "4 listed file(s) are not in the folder" in note and "bed/9f8e7d6c_nohash_0.wav" in note


@pytest.mark.parametrize("line, problem", [
    ("/data/sc/yes/a_nohash_0.wav", "absolute path"), ("yes/../no/a_nohash_0.wav", "'..'"),
    ("yes\\a_nohash_0.wav", "backslash"), ("a_nohash_0.wav", "no file inside a label folder"),
    ("yes/notes.txt", "audio file"),
])
def test_a_line_that_names_no_file_of_a_label_folder_is_one_line_naming_the_list_and_line(tmp_path, line, problem,
                                                                                           capsys):
    root = write_layout(tmp_path / "sc")
    write_list(root / "validation_list.txt", [listed(VALIDATION_SPEAKER)[0], "", line])
    code, _, err = run_cli_output(["train", "--data_dir", str(root), "--output_dir", str(tmp_path / "run")], capsys)
    assert code == 2
    assert f"{root / 'validation_list.txt'}: line 3 " in err and problem in err and "Traceback" not in err


def test_blank_lines_and_windows_line_ends_are_read(tmp_path):
    root = write_layout(tmp_path / "sc")
    (root / "testing_list.txt").write_bytes(b"\r\n".join(n.encode() for n in ["", *listed(TEST_SPEAKER), ""]))
    assert relative(root, list_audio_folder(root).splits["test"]) == sorted(listed(TEST_SPEAKER))


def test_a_file_in_both_lists_is_an_error_naming_it(tmp_path):
    root = write_layout(tmp_path / "sc")
    write_list(root / "testing_list.txt", listed(TEST_SPEAKER) + [listed(VALIDATION_SPEAKER)[1]])
    with pytest.raises(FolderLayoutError, match=r"testing_list\.txt: yes/1b2c3d4e_nohash_1\.wav is also in "
                                                r"validation_list\.txt"):
        list_audio_folder(root)


def test_split_folders_win_over_the_lists_and_say_so(tmp_path):
    root = tmp_path / "sc"
    write_layout(root / "train", lists=False, noise=False)
    write_layout(root / "test", speakers=SPEAKERS[:1], lists=False, noise=False)
    write_list(root / "testing_list.txt", listed(TEST_SPEAKER))
    listing = list_audio_folder(root)
    assert relative(root, listing.splits["test"]) == sorted(f"test/{name}" for name in listed(SPEAKERS[0]))
    assert any("testing_list.txt not read" in note for note in listing.notes)


def test_a_list_wins_over_the_percentages_which_carve_the_split_without_a_list_by_speaker(tmp_path):
    root = write_layout(tmp_path / "sc")
    (root / "testing_list.txt").unlink()
    report = DataReport()
    spec = spec_of(root, tmp_path, validation_percentage=0.0, test_percentage=30.0)
    splits = load_labelled_splits(spec, seed=0, report=report)
    assert split_paths(splits["validation"], root) == sorted(listed(VALIDATION_SPEAKER))  # kept under 0%
    speakers = {name: set(column_values(split, "group")) for name, split in splits.items()}
    assert len(speakers["test"]) >= 1 and not speakers["test"] & (speakers["train"] | speakers["validation"])
    assert any("test carved by whole speakers" in note for note in report.notes)
    assert not report.warnings


def test_without_lists_the_held_out_splits_take_whole_speakers(tmp_path):
    root = write_layout(tmp_path / "sc", lists=False)
    splits = load_labelled_splits(spec_of(root, tmp_path, validation_percentage=20.0, test_percentage=20.0), seed=0)
    speakers = {name: {Path(a["path"]).name.split("_nohash_")[0] for a in column_values(split, "audio")}
                for name, split in splits.items()}
    assert all(speakers.values())
    assert not (speakers["train"] & speakers["validation"] or speakers["train"] & speakers["test"]
                or speakers["validation"] & speakers["test"])


def test_a_changed_list_gives_other_splits_through_the_cache(tmp_path):
    root = write_layout(tmp_path / "sc")
    spec = spec_of(root, tmp_path)
    first, again = (split_paths(load_labelled_splits(spec, seed=0)["test"], root) for _ in range(2))
    assert first == again == sorted(listed(TEST_SPEAKER))
    write_list(root / "testing_list.txt", listed(TEST_SPEAKER, ["yes", "no"]))
    splits = load_labelled_splits(spec, seed=0)
    assert split_paths(splits["test"], root) == sorted(listed(TEST_SPEAKER, ["yes", "no"]))
    assert sorted(f"up/{TEST_SPEAKER}_nohash_{take}.wav" for take in range(2)) == [
        path for path in split_paths(splits["train"], root) if path.startswith(f"up/{TEST_SPEAKER}")]


def test_evaluate_scores_the_testing_list_by_default(tmp_path):
    root = write_layout(tmp_path / "sc")
    evaluated = load_evaluation_split(spec_of(root, tmp_path), list(WORDS))
    assert list(evaluated) == ["test"] and split_paths(evaluated["test"], root) == sorted(listed(TEST_SPEAKER))


def test_one_epoch_of_a_tiny_cnn_tests_on_exactly_the_testing_list(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    root, run = write_layout(tmp_path / "sc"), tmp_path / "run"
    code, _, err = run_cli_output(["train", "--data_dir", str(root), "--output_dir", str(run), "--model_type", "cnn",
                                   "--config_overrides", TINY_CNN, "--num_train_epochs", "1",
                                   "--max_length_seconds", "0.3", "--report_to", "none"], capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_split"] == "test" and metrics["num_test_clips"] == len(listed(TEST_SPEAKER))
    digests = lambda names: sorted({hashlib.sha1((root / name).read_bytes()).hexdigest()[:DIGEST_CHARS]  # noqa: E731
                                    for name in names})
    others = [name for s in SPEAKERS if s not in (VALIDATION_SPEAKER, TEST_SPEAKER) for name in listed(s)]
    recorded = json.loads((run / TRAINING_CLIPS_FILE).read_text())
    assert recorded["train"] == digests(others) and recorded["validation"] == digests(listed(VALIDATION_SPEAKER))
    assert sorted(metrics["labels"]) == sorted(WORDS)  # `_background_noise_` is no class


def test_with_fewer_than_3_speakers_the_splits_are_carved_by_file_and_a_note_says_so(tmp_path):
    root = write_layout(tmp_path / "sc", speakers=SPEAKERS[:2], lists=False)
    report = DataReport()
    splits = load_labelled_splits(spec_of(root, tmp_path, validation_percentage=20.0, test_percentage=20.0), seed=0,
                                  report=report)
    assert sum(len(split) for split in splits.values()) == 12 and "group" not in splits["train"].column_names
    assert any("carved by file" in note and "--group_column speaker" in note for note in report.notes)


def test_a_list_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    root = write_layout(tmp_path / "sc")
    (root / "testing_list.txt").write_bytes("yes/caf\u00e9_nohash_0.wav\n".encode("latin-1"))
    with pytest.raises(FolderLayoutError, match=r"testing_list\.txt: cannot be read as a UTF-8 list of files"):
        list_audio_folder(root)
