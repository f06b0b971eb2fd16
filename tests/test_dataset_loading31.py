"""`datasets` datasets as users have them (session 31 audit): paths as text keyed by each file's stat (a replaced
file was served from the old decoded cache), a second audio or label column (Common Voice's `path` beside
`audio`), `large_string` paths (a CSV clone, pandas' parquet), bare sample arrays, a configuration given for a
`save_to_disk` folder, and relative paths read from another folder: read as meant, or refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

from hfspeech.data.loading import load_audio_dataset
from hfspeech.errors import DataError

RATE = 8000


def _write_clip(path, samples: int) -> str:
    sf.write(str(path), np.full(samples, 0.1, dtype=np.float32), RATE)
    return str(path)


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "wav"
    folder.mkdir()
    return [_write_clip(folder / f"{i}.wav", 400 + 100 * i) for i in range(4)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))


def _save(columns: dict, folder, features=None) -> str:
    DatasetDict({"train": Dataset.from_dict(columns, features=features)}).save_to_disk(str(folder))
    return str(folder)


def test_a_file_replaced_under_its_name_is_decoded_anew(clips, tmp_path):
    from hfspeech.data.labels import encode_labels
    from hfspeech.data.prepare import prepare_dataset

    saved = _save({"file": clips, "label": ["a", "b", "a", "b"]}, tmp_path / "saved")

    def decoded_length() -> int:
        prepared, _ = prepare_dataset(encode_labels(load_audio_dataset(dataset_name=saved, audio_column="file")), RATE)
        return next(row["length"] for row in prepared["train"] if row["path"] == clips[0])

    assert decoded_length() == 400
    _write_clip(clips[0], 1234)
    assert decoded_length() == 1234


def test_a_second_audio_or_label_column_of_the_target_name_is_left_out(clips, tmp_path):
    features = Features({"audio": Audio(), "path": Value("string"), "label": ClassLabel(names=["a", "b"]),
                         "speaker": Value("string")})
    saved = _save({"audio": clips, "path": clips, "label": [0, 1, 0, 1], "speaker": ["x", "x", "y", "y"]},
                  tmp_path / "cv_like", features)
    by_path = load_audio_dataset(dataset_name=saved, audio_column="path")["train"]
    assert [a["path"] for a in by_path["audio"]] == clips
    by_speaker = load_audio_dataset(dataset_name=saved, label_column="speaker")["train"]
    assert by_speaker["label"] == ["x", "x", "y", "y"]
    assert by_speaker.column_names == ["audio", "label"]


def test_sample_arrays_are_refused_in_one_line_naming_the_dataset_and_column(tmp_path):
    saved = _save({"samples": [np.zeros(100, dtype=np.float32)] * 2, "label": ["a", "b"]}, tmp_path / "arrays")
    with pytest.raises(DataError) as error:
        load_audio_dataset(dataset_name=saved, audio_column="samples")
    message = str(error.value)
    assert "\n" not in message and saved in message and "'samples'" in message and "sampling_rate" in message


def test_a_csv_clone_with_large_string_paths_loads(clips, tmp_path):
    clone = tmp_path / "csv_clone"
    clone.mkdir()
    Dataset.from_dict({"file": clips, "label": ["a", "b", "a", "b"]}).to_csv(str(clone / "train.csv"), index=False)
    loaded = load_audio_dataset(dataset_name=str(clone), audio_column="file", cache_dir=str(tmp_path / "cache"))
    assert [a["path"] for a in loaded["train"]["audio"]] == clips


def test_a_configuration_for_a_saved_folder_is_refused(clips, tmp_path):
    saved = _save({"audio": clips, "label": ["a", "b", "a", "b"]}, tmp_path / "saved")
    with pytest.raises(DataError, match="--dataset_config_name clean: .*no configurations"):
        load_audio_dataset(dataset_name=saved, dataset_config_name="clean")


def test_relative_paths_read_from_another_folder_name_the_dataset_and_the_current_folder(clips, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = _save({"audio": [f"wav/{i}.wav" for i in range(4)], "label": ["a", "b", "a", "b"]}, tmp_path / "rel")
    assert len(load_audio_dataset(dataset_name=saved)["train"]) == 4  # from their folder: read
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(DataError, match=f"{saved} \\(split 'train'\\): none of its 4 audio files found: wav/0.wav"
                                        f".*relative, read from the current folder \\({elsewhere}\\)"):
        load_audio_dataset(dataset_name=saved)


def test_a_split_with_some_files_missing_still_loads_for_skip_bad_files(clips, tmp_path):
    saved = _save({"audio": clips[:3] + [str(tmp_path / "gone.wav")], "label": ["a", "b", "a", "b"]}, tmp_path / "s")
    assert len(load_audio_dataset(dataset_name=saved)["train"]) == 4  # the missing one: a decoding error, or skipped


@pytest.mark.parametrize("kind", ["binary", "bytes only", "path only", "array"])
def test_every_audio_column_datasets_casts_still_loads(tmp_path, kind):
    """The refusal of bare sample arrays first refused these too, which datasets' Audio casts and which trained
    before (review 3)."""
    from hfspeech.data.audio import decode_audio

    wav = tmp_path / "a.wav"
    sf.write(wav, np.full(1600, 0.1, np.float32), 16000)
    audio = {"binary": wav.read_bytes(), "bytes only": {"bytes": wav.read_bytes()}, "path only": {"path": str(wav)},
             "array": {"array": [0.1] * 1600, "sampling_rate": 16000}}[kind]
    features = Features({"audio": Value("binary"), "label": Value("string")}) if kind == "binary" else None
    Dataset.from_dict({"audio": [audio], "label": ["x"]}, features=features).save_to_disk(str(tmp_path / "saved"))
    loaded = load_audio_dataset(dataset_name=str(tmp_path / "saved"))
    assert len(decode_audio(loaded["train"][0]["audio"], 16000)) == 1600


def test_a_streamed_clip_read_from_a_replaced_file_is_keyed_anew(tmp_path):
    """`--streaming` writes a local dataset's evaluation rows keyed by key, path and label: a file replaced under
    its name kept its old decoded audio there too (review 3); a clip held as bytes is keyed as before."""
    from hfspeech.data.hub_stream import _written

    features = Features({"audio": Audio(decode=False), "label": Value("string")})
    path = _write_clip(tmp_path / "a.wav", 400)

    def fingerprint(audio):
        return _written(iter([{"audio": audio, "label": "x"}]), features, "local")[0]._fingerprint

    before = fingerprint({"path": path, "bytes": None})
    _write_clip(tmp_path / "a.wav", 1234)
    assert fingerprint({"path": path, "bytes": None}) != before
    held = {"path": path, "bytes": open(path, "rb").read()}
    kept = fingerprint(held)
    _write_clip(tmp_path / "a.wav", 999)  # the clip is its bytes: the file of its name is not its audio
    assert fingerprint(held) == kept
