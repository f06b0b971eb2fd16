"""The data stage: every input layout, resampling, bad files, unknown labels, splits, train-only augmentation."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, DatasetDict

from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks, trim_silence
from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.labels import encode_labels
from hfspeech.data.loading import DataError, load_audio_dataset
from hfspeech.data.prepare import prepare_dataset
from hfspeech.data.splits import make_splits
from hfspeech.data.transforms import AudioClassificationCollator, TrainTransform, attach_transforms
from hfspeech.features.feature_extraction import WaveformFeatureExtractor
from tests.conftest import TONE_CLASSES, synth_clip


def label_names(split):
    return [split.features["label"].int2str(i) for i in split["label"]]


def write_manifest_rows(tmp_path, rows, name="train.csv"):
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text("path,label\n" + "".join(f"{p},{l}\n" for p, l in rows))
    else:
        path.write_text("".join(json.dumps({"path": p, "label": l}) + "\n" for p, l in rows))
    return path


# --- input layouts -------------------------------------------------------------------------------


def test_audiofolder_labels_come_from_folder_names(tone_folder):
    dataset = encode_labels(load_audio_dataset(data_dir=str(tone_folder)))
    train = dataset["train"]
    assert sorted(set(label_names(train))) == sorted(TONE_CLASSES)
    for row, name in zip(train, label_names(train)):
        assert f"/{name}/" in row["audio"]["path"]


@pytest.mark.parametrize("manifest", ["train.csv", "train.jsonl"])
def test_manifest_paths_are_relative_to_the_manifest(tone_folder, tmp_path, manifest):
    files = sorted(tone_folder.glob("*/*.wav"))[:12]
    rows = [(str(f.relative_to(tone_folder)), f.parent.name) for f in files]
    (tmp_path / "sub").mkdir()
    path = write_manifest_rows(tmp_path / "sub", [(f"../audio/{p}", l) for p, l in rows], manifest)
    (tmp_path / "audio").symlink_to(tone_folder)
    dataset = encode_labels(load_audio_dataset(train_file=str(path)))
    assert len(dataset["train"]) == 12
    assert label_names(dataset["train"]) == [l for _, l in rows]


def test_datasets_dataset_saved_to_disk_with_other_column_names(tone_folder, tmp_path):
    files = sorted(tone_folder.glob("*/*.wav"))[:9]
    table = Dataset.from_dict({"speech": [str(f) for f in files], "kind": [f.parent.name for f in files],
                               "speaker": ["x"] * 9}).cast_column("speech", Audio())
    table.save_to_disk(str(tmp_path / "saved"))
    dataset = load_audio_dataset(dataset_name=str(tmp_path / "saved"), audio_column="speech", label_column="kind")
    assert dataset["train"].column_names == ["audio", "label"]
    prepared, _ = prepare_dataset(encode_labels(dataset), 16000)
    assert len(prepared["train"]) == 9


def test_missing_column_names_the_source_and_lists_columns(tmp_path, tone_folder):
    path = tmp_path / "m.csv"
    path.write_text(f"file,label\n{next(tone_folder.glob('*/*.wav'))},low\n")
    with pytest.raises(DataError, match=r"m\.csv: missing column\(s\) \['path'\].*available columns: \['file', 'label'\]"):
        load_audio_dataset(train_file=str(path))


def test_manifest_listing_a_missing_file_names_it(tmp_path):
    path = write_manifest_rows(tmp_path, [("nowhere/a.wav", "x")])
    with pytest.raises(DataError, match=r"do not exist: .*nowhere/a\.wav"):
        load_audio_dataset(train_file=str(path))


def test_exactly_one_source_is_required(tone_folder, tmp_path):
    with pytest.raises(DataError, match="exactly one data source"):
        load_audio_dataset(data_dir=str(tone_folder), dataset_name="x")
    with pytest.raises(DataError, match="audio folder not found"):
        load_audio_dataset(data_dir=str(tmp_path / "absent"))


# --- labels --------------------------------------------------------------------------------------


def test_unknown_label_in_test_split_names_file_and_label(tone_folder, tmp_path):
    low = sorted((tone_folder / "low").glob("*.wav"))
    high = sorted((tone_folder / "high").glob("*.wav"))
    train = write_manifest_rows(tmp_path, [(str(f), "low") for f in low[:3]] + [(str(f), "high") for f in high[:3]])
    test = write_manifest_rows(tmp_path, [(str(low[5]), "low"), (str(high[5]), "squeak")], "test.csv")
    with pytest.raises(DataError, match=rf"{high[5]}: unknown label 'squeak' in split 'test'.*known labels: \['high', 'low'\]"):
        encode_labels(load_audio_dataset(train_file=str(train), test_file=str(test)))


def test_labels_outside_a_models_label_set_are_rejected(tone_folder):
    dataset = load_audio_dataset(data_dir=str(tone_folder))
    with pytest.raises(DataError, match="unknown label 'noise'"):
        encode_labels(dataset, ["high", "low"])
    encoded = encode_labels(dataset, ["noise", "low", "high", "extra"])
    assert encoded["train"].features["label"].names == ["noise", "low", "high", "extra"]
    assert label_names(encoded["train"]) == [r["audio"]["path"].split("/")[-2] for r in encoded["train"]]


# --- decoding and resampling ---------------------------------------------------------------------


def dominant_frequency(waveform, sampling_rate):
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return np.fft.rfftfreq(len(waveform), 1 / sampling_rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 16000])
def test_resampling_to_16k_keeps_duration_and_pitch(tmp_path, rate):
    seconds, frequency = 1.5, 1000.0
    t = np.arange(int(seconds * rate)) / rate
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * frequency * t), rate)
    waveform = decode_audio(str(tmp_path / "tone.wav"), 16000)
    assert waveform.dtype == np.float32
    assert abs(len(waveform) - seconds * 16000) <= 16
    assert abs(dominant_frequency(waveform, 16000) - frequency) < 5


def test_stereo_is_downmixed_to_mono(tmp_path):
    t = np.arange(16000) / 16000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 880 * t)], axis=1)
    sf.write(tmp_path / "stereo.flac", stereo, 16000)
    waveform = decode_audio(str(tmp_path / "stereo.flac"), 16000)
    assert waveform.ndim == 1 and len(waveform) == 16000
    spectrum = np.abs(np.fft.rfft(waveform))
    assert spectrum[440] > 0.2 * spectrum.max() and spectrum[880] > 0.2 * spectrum.max()


def write_bad_files(folder):
    """One file of each kind of bad input, in a `bad` label folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 4)
    (folder / "notes.mp3").write_text("this is a text file, not audio\n" * 20)
    sf.write(folder / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    nan = np.full(1600, 0.1, dtype=np.float32)
    nan[10] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(folder / "truncated.wav", np.full(16000, 0.1, dtype=np.float32), 16000)
    (folder / "truncated.wav").write_bytes((folder / "truncated.wav").read_bytes()[:300])
    return {"empty.wav": "file is empty", "corrupt.wav": "cannot be decoded", "notes.mp3": "cannot be decoded",
            "zero.wav": "zero length", "nan.wav": "NaN", "truncated.wav": "truncated WAV"}


def test_each_kind_of_bad_file_gets_an_error_naming_it(tmp_path):
    problems = write_bad_files(tmp_path)
    for name, problem in problems.items():
        with pytest.raises(AudioFileError, match=rf"{tmp_path / name}: .*{problem}"):
            decode_audio(str(tmp_path / name), 16000)


def one_second_wav(path, data_size=None, extra=b"", before_data=b""):
    """A 1-s 16-kHz 16-bit WAV (32,000 bytes of audio); `data_size` overwrites the size its header declares,
    `extra` is appended to the file and `before_data` (whole chunks) inserted before the data chunk."""
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000, subtype="PCM_16")
    content = bytearray(path.read_bytes())
    at = content.index(b"data")
    if data_size is not None:
        content[at + 4:at + 8] = struct.pack("<I", data_size)
    content[at:at] = before_data
    path.write_bytes(bytes(content) + extra)
    return path


@pytest.mark.parametrize("cut", [44, 45, 300, 16044, 31900])
def test_a_truncated_wav_is_named_with_what_is_missing(tmp_path, cut):
    # libsndfile and ffmpeg decode what is there without a word (300 bytes: 128 samples); the header says more
    path = one_second_wav(tmp_path / "cut.wav", before_data=b"JUNK\x03\x00\x00\x00abc\x00")
    path.write_bytes(path.read_bytes()[:cut + 12])
    problem = f"{path}: truncated WAV: header declares 32000 bytes of audio, file holds {cut - 44}"
    for decode in (lambda: decode_audio(str(path), 16000), lambda: list(iter_audio_chunks(path, 16000)),
                   lambda: decode_audio({"path": str(path), "bytes": path.read_bytes()}, 16000)):
        with pytest.raises(AudioFileError) as error:
            decode()
        assert str(error.value) == problem


@pytest.mark.parametrize("kind", ["size 0", "size 0xFFFFFFFF", "size 2 GiB", "longer", "short by 40 bytes", "RF64"])
def test_streaming_writers_wavs_and_longer_wavs_are_read_whole(tmp_path, kind):
    path = tmp_path / "w.wav"
    if kind == "RF64":
        sf.write(path, np.full(16000, 0.25), 16000, format="RF64")
    else:
        sizes = {"size 0": 0, "size 0xFFFFFFFF": 0xFFFFFFFF, "size 2 GiB": 0x7FFFFFFF, "short by 40 bytes": 32040}
        one_second_wav(path, sizes.get(kind), extra=b"LIST\x04\x00\x00\x00abcd" if kind == "longer" else b"")
    # size 0: libsndfile reads no samples from it (it said "zero length"); ffmpeg reads to the end of the file
    assert len(decode_audio(str(path), 16000)) == 16000
    assert sum(len(chunk) for chunk in iter_audio_chunks(path, 16000)) == 16000


@pytest.mark.parametrize("kept", [0.9, 0.99])
def test_an_ogg_cut_short_is_named_undecodable_not_empty(tmp_path, kept):
    # libsndfile takes an OGG's length from its last page: cut short, it read no samples ("zero length")
    path = tmp_path / "cut.ogg"
    sf.write(path, 0.5 * np.sin(np.arange(48000) / 5), 16000)
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * kept)])
    for decode in (lambda: decode_audio(str(path), 16000), lambda: list(iter_audio_chunks(path, 16000)),
                   lambda: decode_audio({"path": None, "bytes": path.read_bytes()}, 16000)):
        with pytest.raises(AudioFileError, match="cannot be decoded as audio .*End of file"):
            decode()


def test_an_unreadable_file_is_named_as_unreadable_not_corrupt(tmp_path):
    path = tmp_path / "locked.wav"
    one_second_wav(path).chmod(0)
    command = [sys.executable, "-c", "from hfspeech.data.audio import decode_audio\ntry:\n"
               f"    decode_audio({str(path)!r}, 16000)\nexcept Exception as error:\n    print(error)"]
    if os.access(path, os.R_OK):  # root reads anything: drop the capabilities that let it
        if not shutil.which("capsh"):
            pytest.skip("running as root without capsh: cannot make a file unreadable")
        command = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(command)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "Traceback" not in run.stderr:  # capsh could not drop them (in some containers)
        pytest.skip(f"cannot drop the capabilities here: {run.stderr.strip()[-200:]}")
    assert run.stdout.strip() == f"{path}: cannot be read: Permission denied"


def test_preparation_stops_at_a_bad_file_unless_skipping_is_enabled(tone_folder, tmp_path):
    data = tmp_path / "data"
    for kind in TONE_CLASSES:
        (data / kind).mkdir(parents=True)
        for f in sorted((tone_folder / kind).glob("*.wav"))[:4]:
            (data / kind / f.name).write_bytes(f.read_bytes())
    problems = write_bad_files(data / "low")
    dataset = encode_labels(load_audio_dataset(data_dir=str(data)))
    with pytest.raises(AudioFileError, match=r"/low/(empty|corrupt|zero|nan|truncated)\.wav|/low/notes\.mp3"):
        prepare_dataset(dataset, 16000)
    prepared, report = prepare_dataset(dataset, 16000, skip_bad_files=True)
    assert report.num_skipped == len(problems) and report.kept["train"] == 12
    assert len(prepared["train"]) == 12
    skipped = {entry["path"].split("/")[-1]: entry["problem"] for entry in report.skipped["train"]}
    assert set(skipped) == set(problems)
    for name, problem in problems.items():
        assert problem.lower() in skipped[name].lower()
    report.save(str(tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text())["num_skipped"] == len(problems)


def test_preparation_in_two_processes_matches_one(tone_folder):
    dataset = encode_labels(load_audio_dataset(data_dir=str(tone_folder)))
    single, _ = prepare_dataset(dataset, 16000)
    double, _ = prepare_dataset(dataset, 16000, num_proc=2)
    assert single["train"]["length"] == double["train"]["length"]
    assert np.array_equal(np.asarray(single["train"][5]["input_values"]), np.asarray(double["train"][5]["input_values"]))


def test_trim_silence_cuts_quiet_edges_only():
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000).astype(np.float32)
    padded = np.concatenate([np.zeros(8000, np.float32), tone, np.zeros(4000, np.float32)])
    trimmed = trim_silence(padded, top_db=30)
    assert 7000 <= len(trimmed) <= 9500
    assert np.array_equal(trim_silence(np.zeros(100, np.float32)), np.zeros(100, np.float32))


# --- splits --------------------------------------------------------------------------------------


def test_stratified_splits_keep_class_shares(tone_folder):
    dataset = encode_labels(load_audio_dataset(data_dir=str(tone_folder)))
    splits = make_splits(dataset, validation_fraction=0.2, test_fraction=0.2, seed=1)
    assert set(splits) == {"train", "validation", "test"}
    assert sum(len(s) for s in splits.values()) == 60
    for name in ("validation", "test"):
        counts = np.bincount(splits[name]["label"], minlength=3)
        assert counts.tolist() == [4, 4, 4], (name, counts)
    paths = [set(r["audio"]["path"] for r in s) for s in splits.values()]
    assert not (paths[0] & paths[1]) and not (paths[0] & paths[2]) and not (paths[1] & paths[2])


def test_existing_test_split_is_kept(tone_folder):
    dataset = encode_labels(load_audio_dataset(data_dir=str(tone_folder)))
    parts = dataset["train"].train_test_split(test_size=6, seed=0)
    splits = make_splits(DatasetDict({"train": parts["train"], "test": parts["test"]}), 0.1, 0.1)
    assert len(splits["test"]) == 6 and len(splits["validation"]) > 0


# --- transforms, augmentation, collation ---------------------------------------------------------


@pytest.fixture(scope="module")
def prepared_tones(tone_folder):
    dataset = encode_labels(load_audio_dataset(data_dir=str(tone_folder)))
    splits = make_splits(dataset, 0.2, 0.2, seed=0)
    prepared, _ = prepare_dataset(splits, 16000)
    return prepared


def augmenter(seed):
    return WaveformAugmenter(AugmentationConfig(noise_snr_db=(5.0, 10.0), noise_prob=1.0, gain_db=6.0), 16000, seed)


def test_augmentation_is_applied_to_train_only(prepared_tones):
    views = attach_transforms(prepared_tones, 16000, max_length_seconds=0.25, augmenter=augmenter(0), seed=0)
    for name in ("validation", "test"):
        stored = np.asarray(prepared_tones[name][0]["input_values"], dtype=np.float32)
        first, second = views[name][0]["input_values"], views[name][0]["input_values"]
        start = (len(stored) - 4000) // 2
        assert np.array_equal(first, stored[start : start + 4000]) and np.array_equal(first, second)
    stored = np.asarray(prepared_tones["train"][0]["input_values"], dtype=np.float32)
    clip = views["train"][0]["input_values"]
    assert len(clip) == 4000
    assert not any(np.allclose(clip, stored[s : s + 4000], atol=1e-3) for s in range(0, len(stored) - 3999, 1))


def test_train_transform_is_reproducible_with_a_seed(prepared_tones):
    batch = prepared_tones["train"][:6]

    def run(seed):
        transform = TrainTransform(4000, augmenter(seed), seed)
        return [transform(batch)["input_values"] for _ in range(2)]

    first, again, other = run(3), run(3), run(4)
    for a, b in zip(first, again):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(first[0], other[0]))
    assert not all(np.array_equal(x, y) for x, y in zip(first[0], first[1]))  # epochs differ


def test_collator_pads_to_longest_with_attention_mask():
    extractor = WaveformFeatureExtractor(sampling_rate=16000)
    rng = np.random.default_rng(0)
    clips = [synth_clip("low", rng, 16000, 0.1), synth_clip("high", rng, 16000, 0.25)]
    batch = AudioClassificationCollator(extractor)([{"input_values": c, "label": i} for i, c in enumerate(clips)])
    assert batch["input_values"].shape == (2, 4000)
    assert batch["attention_mask"].sum(-1).tolist() == [1600, 4000]
    assert batch["labels"].tolist() == [0, 1]


def test_audiofolder_with_loose_files_or_no_audio_is_rejected(tmp_path):
    sf.write(tmp_path / "loose.wav", np.zeros(160, np.float32), 16000)
    with pytest.raises(DataError, match=r"directly in the folder have no label \(e\.g\. loose\.wav\)"):
        load_audio_dataset(data_dir=str(tmp_path))


def test_audiofolder_with_a_single_class_keeps_its_label(tmp_path):
    (tmp_path / "only").mkdir()
    sf.write(tmp_path / "only" / "a.wav", np.zeros(160, np.float32), 16000)
    dataset = encode_labels(load_audio_dataset(data_dir=str(tmp_path)))
    assert dataset["train"].features["label"].names == ["only"]


def test_random_crops_differ_across_dataloader_workers_and_epochs():
    """Non-persistent workers start each epoch from a fresh copy of the transform: crops must not repeat."""
    import torch

    ramps = [np.arange(4000, dtype=np.float32) for _ in range(8)]
    table = Dataset.from_dict({"input_values": ramps, "label": [0] * 8})
    clips = table.with_transform(TrainTransform(1000, seed=0), columns=["input_values", "label"])
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(clips, batch_size=None, num_workers=2, collate_fn=lambda x: x)

    def starts():  # a ramp's first sample is where its crop began
        return [int(example["input_values"][0]) for example in loader]

    first, second = starts(), starts()
    assert first != second
    assert first[0::2] != first[1::2]  # the two workers (alternating examples) do not mirror each other


AUDIOFOLDER_LAYOUTS = {  # where hfspeech's listing and datasets' data_dir loading agree
    "labels": ["a/x.wav", "a/y.flac", "b-2/z.wav", "b/w.wav", "b/.hidden.wav", "__cache__/c.wav", "clips.json"],
    "single class": ["only/a.wav", "only/b.wav"],
    "split folders": ["train/a/1.wav", "train/b/2.wav", "train/b/1.wav", "valid/a/3.wav", "dev/b/4.wav",
                      "test/a/5.wav", "test/b/6.flac", "notes.txt"],
    "metadata": ["a/x.wav", "b/y.wav", "metadata.csv"],
}


@pytest.mark.parametrize("layout", list(AUDIOFOLDER_LAYOUTS))
def test_audiofolder_listing_matches_datasets_data_dir_loading(tmp_path, layout):
    from datasets import load_dataset

    for relative in AUDIOFOLDER_LAYOUTS[layout]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.endswith("metadata.csv"):
            path.write_text("file_name,label\na/x.wav,b\nb/y.wav,a\n")
        elif path.suffix in (".wav", ".flac"):
            sf.write(path, np.zeros(160, np.float32), 16000)
        else:
            path.write_text("{}")

    expected = load_dataset("audiofolder", data_dir=str(tmp_path), drop_labels=False).cast_column(
        "audio", Audio(decode=False))
    loaded = load_audio_dataset(data_dir=str(tmp_path))
    assert list(loaded) == list(expected)
    for name, split in expected.items():
        assert loaded[name].features == split.features
        assert [a["path"] for a in loaded[name]["audio"]] == [a["path"] for a in split["audio"]]
        assert loaded[name]["label"] == split["label"]
