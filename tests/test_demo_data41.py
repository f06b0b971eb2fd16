"""`demo-data` and `demo` wrote into a folder of the user's (session 41): the keyword generator writes
`README.md`, `labels.csv` and `<keyword>/<keyword>_<nnnn>.wav` into its folder and removes clips named like its
own, so `hfspeech demo --data_dir data/` on the user's own keyword recordings, or `demo-data` into a notes folder,
overwrote or deleted the user's files. Now a non-empty folder is written only when a generator wrote it (its info
file, or the mark of an interrupted run); the refusal comes before espeak-ng is looked for."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli_output
from hfspeech.synthetic.reuse import GENERATING_MARK, INFO_FILE, GeneratedFolder, generators_own


def users_keywords(tmp_path):
    """The user's own recordings, named as the generator names its clips, and their notes."""
    folder = tmp_path / "mine"
    (folder / "yes").mkdir(parents=True)
    (folder / "yes" / "yes_0000.wav").write_bytes(b"RIFF my recording")
    (folder / "README.md").write_text("my notes")
    return folder


@pytest.mark.parametrize("command", [["demo-data", "{folder}"],
                                     ["demo", "--data_dir", "{folder}", "--output_dir", "{folder}/../out"]])
def test_a_users_folder_is_refused_and_left_as_it_was(command, tmp_path, capsys):
    folder = users_keywords(tmp_path)
    code, _, err = run_cli_output([part.format(folder=folder) for part in command] + ["--clips_per_" + (
        "class" if command[0] == "demo-data" else "keyword"), "1"], capsys)
    assert code == 2 and "holds other files (README.md, yes)" in err and len(err.strip().splitlines()) == 1
    assert (folder / "yes" / "yes_0000.wav").read_bytes() == b"RIFF my recording"
    assert (folder / "README.md").read_text() == "my notes"


def test_another_tools_dataset_info_is_not_taken_for_a_generators(tmp_path, capsys):
    """datasets' `save_to_disk` writes a `dataset_info.json` too."""
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / INFO_FILE).write_text(json.dumps({"citation": "", "features": {}}))
    code, _, err = run_cli_output(["demo-data", str(folder), "--kind", "events", "--num_clips", "4"], capsys)
    assert code == 2 and "holds other files (dataset_info.json)" in err


def test_a_generated_folder_and_an_interrupted_one_are_the_generators(tmp_path):
    finished, interrupted = GeneratedFolder(tmp_path / "a", {"seed": 0}), GeneratedFolder(tmp_path / "b", {"s": 1})
    finished.start_over()
    finished.finish(num_clips=0)
    interrupted.start_over()
    assert not (tmp_path / "a" / GENERATING_MARK).exists() and (tmp_path / "b" / GENERATING_MARK).exists()
    assert not generators_own(tmp_path / "a", "seed")(INFO_FILE)  # no generator_version in these parameters
    (tmp_path / "a" / INFO_FILE).write_text(json.dumps({"generator_version": 1, "events": ["beep"]}))
    assert generators_own(tmp_path / "a", "events")(INFO_FILE) and generators_own(tmp_path / "b", "x")(GENERATING_MARK)
    assert not generators_own(tmp_path / "a", "keywords")(INFO_FILE)  # another kind's folder


def test_a_folder_another_kind_generated_is_refused(tmp_path, capsys):
    """Keywords written into an events folder: its `audio/` clips stayed and trained as a class of their own."""
    folder = tmp_path / "mix"
    assert run_cli_output(["demo-data", str(folder), "--kind", "events", "--num_clips", "4"], capsys)[0] == 0
    code, _, err = run_cli_output(["demo-data", str(folder), "--kind", "keywords", "--clips_per_class", "1"], capsys)
    assert code == 2 and "not keywords data that hfspeech generated" in err


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_an_earlier_demo_datas_folder_is_written_again(tmp_path, capsys):
    folder = tmp_path / "kws"
    args = ["demo-data", str(folder), "--clips_per_class", "1", "--keywords", "yes", "no", "--clip_seconds", "0.5"]
    assert run_cli_output(args, capsys)[0] == 0
    (folder / "my_note.txt").write_text("kept")
    code, _, err = run_cli_output(args[:3] + ["2"] + args[4:], capsys)
    assert code == 0, err
    assert len(list((folder / "yes").glob("*.wav"))) == 2 and (folder / "my_note.txt").read_text() == "kept"


def test_a_users_noise_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "noise"
    folder.mkdir()
    (folder / "cafe.wav").write_bytes(b"mine")
    code, _, err = run_cli_output(["demo-data", str(tmp_path / "new"), "--noise_files", str(folder)], capsys)
    assert code == 2 and "--noise_files" in err and "holds other files (cafe.wav)" in err
