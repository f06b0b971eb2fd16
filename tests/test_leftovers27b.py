"""Four leftovers: cross-validation's reason for a label missing from a fold's training rows, manifest names in
the other Unicode normalisation than their files, file names that are not UTF-8 at decoding, and the
run_inputs.json record left by a training run that failed on its data."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli_output, write_csv_manifest
from hfspeech.data.audio import AudioFileError, decode_audio
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.errors import DataError
from hfspeech.training.cross_validation import write_fold_manifests


def _clip(path: Path) -> Path:
    sf.write(path, (np.random.default_rng(0).standard_normal(4000) * 0.1).astype("float32"), 16000)
    return path


def test_cross_validation_names_validation_when_a_labels_other_clips_were_drawn_for_it(tmp_path):
    # "rare" has a clip in each speaker: a fold misses it only when its one clip outside the held-out speaker
    # was drawn for validation, never because all its clips are in one speaker
    rows = [{"path": f"c{speaker}{i}.wav", "label": label, "speaker": speaker}
            for speaker in ("s0", "s1") for i, label in enumerate(("rare", "common"))]
    manifest = write_csv_manifest(tmp_path / "all.csv", rows)
    messages = []
    for seed in range(12):
        try:
            write_fold_manifests(manifest, "speaker", str(tmp_path / f"out{seed}"), 0.5, seed, label_column="label")
        except DataError as error:
            messages.append(str(error))
    assert messages, "no seed drew the rare clip for validation"
    for message in messages:
        assert "all its clips are in" not in message and "drawn for validation" in message, message


def test_cross_validation_still_says_all_clips_are_in_one_group_when_they_are(tmp_path):
    rows = [{"path": f"c{i}.wav", "label": "rare" if i == 0 else "common", "speaker": f"s{i % 2}"}
            for i in range(6)]
    with pytest.raises(DataError, match=r"label 'rare' .*all its clips are in speaker 's0'"):
        write_fold_manifests(write_csv_manifest(tmp_path / "all.csv", rows), "speaker", str(tmp_path / "out"), 0.2, 0,
                             label_column="label")


@pytest.mark.parametrize("on_disk, written", [("NFD", "NFC"), ("NFC", "NFD")])
def test_manifest_name_in_the_other_unicode_normalisation_reads_the_file(tmp_path, on_disk, written):
    rows = []
    for i in range(6):
        name = f"café-{i}.wav"
        _clip(tmp_path / unicodedata.normalize(on_disk, name))
        rows.append({"path": unicodedata.normalize(written, name), "label": "ab"[i % 2]})
    spec = DataSpec(source={"train_file": write_csv_manifest(tmp_path / "train.csv", rows)})
    splits = load_labelled_splits(spec, seed=0)
    paths = [clip["path"] for split in splits.values() for clip in column_values(split, "audio")]
    assert len(paths) == 6 and all(os.path.exists(path) for path in paths)


def test_manifest_name_missing_in_both_normalisations_is_still_an_error(tmp_path):
    _clip(tmp_path / "other.wav")
    rows = [{"path": "café.wav", "label": "a"}, {"path": "other.wav", "label": "b"}]
    with pytest.raises(DataError, match=r"1 audio file\(s\) listed in the manifest do not exist: .*café\.wav"):
        load_labelled_splits(DataSpec(source={"train_file": write_csv_manifest(tmp_path / "train.csv", rows)}), seed=0)


def test_a_file_name_that_is_not_utf8_is_named_so_at_decoding(tmp_path):
    latin1 = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    os.rename(_clip(tmp_path / "clip.wav"), latin1)
    with pytest.raises(AudioFileError) as caught:
        decode_audio(os.fsdecode(latin1), 16000)
    assert "the name is not UTF-8" in str(caught.value) and "caf\\xe9.wav" in str(caught.value)
    assert "found type 'str'" not in str(caught.value)


@pytest.mark.parametrize("existing", [False, True])
def test_train_failing_on_its_data_leaves_no_run_record(tmp_path, capsys, existing):
    output_dir = tmp_path / "run"
    if existing:
        output_dir.mkdir()
    code, _, err = run_cli_output(["train", "--data_dir", str(tmp_path / "missing"), "--output_dir", str(output_dir),
                                   "--model_type", "cnn"], capsys)
    assert code != 0 and "audio folder not found" in err
    assert not output_dir.exists() or os.listdir(output_dir) == []
