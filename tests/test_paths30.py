"""File and folder names as users have them (session 30's audit): a manifest written on Windows or linked
from elsewhere, paths written relative to where the command runs, a very long clip name with --timeline,
an export file with an upper-case extension, a file name with a line break in a layout error, a macOS folder
name in the int8 gate's folder. Each is read as `hfspeech train` reads it, or refused in one line that names
it unmistakably; none is a traceback or a file silently not found."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.data.manifests import ManifestError
from hfspeech.inference.outputs import expand_inputs
from tests.conftest import run_cli_output, save_random_baseline, synth_clip


@pytest.fixture(scope="module")
def random_cnn(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("paths30") / "cnn", "cnn", ["low", "high", "noise"], 0.5,
                                n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


def write_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_clip("low", np.random.default_rng(0), 16000, 0.6), 16000, format="WAV")
    return path


def test_predict_reads_a_windows_manifest_a_macos_name_and_a_linked_manifest_as_training_does(tmp_path):
    nfd = unicodedata.normalize("NFD", "café.wav")  # as a folder copied from macOS holds it
    clips = [write_clip(tmp_path / "clips" / "take 1.wav"), write_clip(tmp_path / "clips" / nfd)]
    manifest = tmp_path / "lists" / "test.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,label\n..\\clips\\take 1.wav,low\n../clips/café.wav ,low\n", encoding="utf-8")
    found = expand_inputs([], str(manifest))
    assert [os.path.samefile(file, clip) for file, clip in zip(found, clips)] == [True, True]  # were "not found"
    linked = tmp_path / "elsewhere" / "test.csv"  # a link to the manifest: rows read from the manifest's folder
    linked.parent.mkdir()
    linked.symlink_to(manifest)
    assert [os.path.samefile(file, clip) for file, clip in zip(expand_inputs([], str(linked)), clips)] == [True, True]


def test_manifest_paths_written_from_the_current_folder_are_refused_saying_relative_to_what(tmp_path, monkeypatch):
    write_clip(tmp_path / "data" / "yes" / "a.wav")
    manifest = tmp_path / "data" / "test.jsonl"
    manifest.write_text(json.dumps({"path": "data/yes/a.wav"}) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as refused:  # each file failed alone as "file not found" before
        expand_inputs([], "data/test.jsonl")
    assert str(refused.value) == ("data/test.jsonl: row 1's 'data/yes/a.wav' is not in the manifest's folder (data) "
                                  "but is in the current folder: a manifest's relative paths start from its own "
                                  "folder; write them so, or absolute")
    manifest.write_text(json.dumps({"path": "yes/a.wav"}) + "\n", encoding="utf-8")  # as the rule says
    assert expand_inputs([], "data/test.jsonl") == [os.path.join("data", "yes", "a.wav")]


def test_timelines_of_clips_with_very_long_names_are_written_apart(random_cnn, tmp_path, capsys):
    long_names = ["x" * 240 + "-first.wav", "x" * 240 + "-second.wav"]  # 250 and 251 bytes: names ext4 allows
    clips = [str(write_clip(tmp_path / name)) for name in long_names]
    timelines = tmp_path / "timelines"
    code, out, err = run_cli_output(["predict", str(random_cnn), *clips, "--timeline", str(timelines)], capsys)
    assert code == 0 and "Traceback" not in err, err  # was OSError "File name too long", after the first prediction
    written = sorted(timelines.iterdir())
    assert len(written) == 6 and max(len(os.fsencode(path.name)) for path in written) <= 255
    paths = {json.loads(path.read_text())["path"] for path in written if path.suffix == ".json"}
    assert paths == set(clips)  # one timeline per clip: the second did not replace the first


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_an_export_file_with_an_upper_case_extension_runs(random_cnn, tmp_path, capsys, kind):
    from hfspeech.export import export_onnx, export_torchscript

    exported = (export_onnx if kind == "onnx" else export_torchscript)(random_cnn, tmp_path / kind)
    shouting = exported.with_name(exported.stem.upper() + exported.suffix.upper())  # MODEL.ONNX from a FAT drive
    exported.rename(shouting)
    clip = str(write_clip(tmp_path / "clip.wav"))
    code, out, err = run_cli_output(["predict", str(shouting), clip, "--json"], capsys)
    assert code == 0, err  # was "not a model folder (it is a file; pass the folder holding config.json)"
    assert json.loads(out)["predictions"][0]["label"] in {"low", "high", "noise"}


def test_a_folder_layout_error_names_a_file_with_a_line_break_unmistakably(tmp_path):
    from hfspeech.data.folders import FolderLayoutError, list_audio_folder

    write_clip(tmp_path / "data" / "yes" / "a.wav")
    write_clip(tmp_path / "data" / "take\n1.wav")  # beside the class folders: no label
    write_clip(tmp_path / "data" / "take 1.wav")  # the name the error's line break, made a space, pointed to
    with pytest.raises(FolderLayoutError) as refused:
        list_audio_folder(tmp_path / "data")
    assert "(e.g. 'take\\n1.wav')" in str(refused.value) and "\n" not in str(refused.value)


def test_the_int8_gates_folder_names_are_read_as_training_reads_labels(tmp_path):
    from hfspeech.inference.agreement import labelled_clips

    clips = tmp_path / "eval"
    write_clip(clips / unicodedata.normalize("NFD", "café") / "a.wav")  # a folder name copied from macOS
    write_clip(clips / "no" / "b.wav")
    paths, labels = labelled_clips(clips, {"café", "no"})  # training made the model's label of it NFC
    assert labels == ["café", "no"] and [Path(path).name for path in paths] == ["a.wav", "b.wav"]
