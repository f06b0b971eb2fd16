"""What a datasets user meets (session 32): a seed sweep decodes its clips once, not once per seed's split; split
slices (`--train_split_name 'train[:80%]'`, run_audio_classification.py's habit) are cut, or refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_tone_folder
from hfspeech.data.audio import AudioFileError
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.prepare import SKIP_HINT, DataReport, prepare_dataset
from hfspeech.errors import DataError, UsageError
from tests.test_hub_dataset_inputs import rows
from tests.test_split_names import dataset, load, offline  # noqa: F401  (offline: the Hub off, autouse)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def carved(root: Path, seed: int, **limits) -> dict:
    """An audio folder without split folders: validation and test carved out of train by `seed`."""
    return load_labelled_splits(DataSpec(source={"data_dir": str(root), "cache_dir": str(root.parent / "cache")},
                                         **limits), seed)


def decoded_files(prepared) -> set[str]:
    return {cache["filename"] for split in prepared.values() for cache in split.cache_files}


@pytest.mark.parametrize("per_class", [6, 2])  # 2: one clip held out for validation and test (a contiguous slice)
def test_a_seed_sweep_decodes_the_clips_once_and_each_seed_keeps_its_splits(tmp_path, per_class):
    root = write_tone_folder(tmp_path / "data", clips_per_class=per_class, rates=(16000,))
    seen = {}
    for seed in (0, 1):
        raw = carved(root, seed)
        prepared, _ = prepare_dataset(raw, 16000)
        for name, split in raw.items():  # the same clips, in the same order, as the split decoded alone
            seen.setdefault(name, set()).update(decoded_files({name: prepared[name]}))
            alone, _ = prepare_dataset({name: split.flatten_indices(keep_in_memory=True)}, 16000)
            assert prepared[name]["path"] == alone[name]["path"]
            assert prepared[name]["input_values"] == alone[name]["input_values"]
    # Before: each seed's train, validation and test were decoded into files of their own (6 here). A one-clip
    # split is a slice of the table, not a selection: decoded by itself (one clip), as before.
    shared = set.union(*seen.values()) if per_class == 6 else seen["train"]
    assert len(shared) == 1


def test_max_train_samples_sweeps_share_the_decoded_clips_too(tmp_path):
    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    seen = set()
    for limit in (8, 10):
        prepared, _ = prepare_dataset(carved(root, 0, max_train_samples=limit), 16000)
        assert len(prepared["train"]) == limit
        seen |= decoded_files(prepared)
    assert len(seen) == 1  # before: 4 (the validation and test splits were shared, train decoded per limit)


def test_a_bad_file_is_refused_or_skipped_in_the_split_that_holds_it(tmp_path):
    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    bad = root / "low" / "broken.wav"
    bad.write_bytes(b"RIFF0000WAVEnot audio")
    with pytest.raises(AudioFileError, match="broken.wav") as raised:
        prepare_dataset(carved(root, 0), 16000)
    assert SKIP_HINT in str(raised.value)
    report = DataReport()
    raw = carved(root, 0)
    prepared, report = prepare_dataset(raw, 16000, skip_bad_files=True, report=report)
    holder = next(name for name, split in raw.items() if str(bad) in [a["path"] for a in split["audio"]])
    assert [entry["path"] for entry in report.skipped[holder]] == [str(bad)]
    assert sum(report.kept.values()) == sum(len(split) for split in raw.values()) - 1


def slices_corpus(root: Path, kind: str) -> str:
    return dataset(root, kind, {"train": rows(4, path=lambda kind, i: f"train_{kind}_{i}.wav"),
                                "test": rows(1, path=lambda kind, i: f"test_{kind}_{i}.wav", seed=50)})


@pytest.mark.parametrize("kind", ["clone", "saved"])
def test_split_slices_as_run_audio_classification_takes_them(tmp_path, kind):
    name = slices_corpus(tmp_path / "corpus", kind)
    splits, report = load(False, dataset_name=name, train_split_name="train[:75%]", eval_split_name="train[75%:]")
    in_order = [f"train_{tone}_{i}.wav" for tone in ("low", "high", "noise") for i in range(4)]  # the split's rows
    assert sorted(Path(p).name for p in splits["train"]) == sorted(in_order[:9])
    assert sorted(Path(p).name for p in splits["validation"]) == sorted(in_order[9:])
    assert sorted(Path(p).name for p in splits["test"]) == ["test_high_0.wav", "test_low_0.wav", "test_noise_0.wav"]
    assert report.found == {"train": 9, "validation": 3, "test": 3}
    assert not [note for note in report.notes if "is not used" in note]  # 'train' is used, in two parts


def test_split_slices_refused_in_one_line_where_they_cannot_be_cut(tmp_path):
    name = slices_corpus(tmp_path / "corpus", "clone")
    with pytest.raises(UsageError, match=r"^--train_split_name train\[:75%\]: split slices are cut from a loaded "
                                         r"dataset, not a stream; with --streaming name whole splits"):
        load(True, dataset_name=name, train_split_name="train[:75%]")
    with pytest.raises(UsageError, match=r"^--eval_split_name train\[75: neither a split nor datasets' slice"):
        load(False, dataset_name=name, eval_split_name="train[75")
    with pytest.raises(DataError, match=r"^--eval_split_name dev\[:10%\]: .* has no split 'dev'; its splits: "):
        load(False, dataset_name=name, eval_split_name="dev[:10%]")
    with pytest.raises(UsageError, match=r"another flag takes a slice of 'train' \(train\[75%:\]\); give the part "
                                         r"trained on as a slice too"):
        load(False, dataset_name=name, eval_split_name="train[75%:]")  # before: train whole held validation too
    with pytest.raises(DataError, match=r"^--eval_split_name train\[100%:\]: no rows of split 'train' \(12 rows\)"):
        load(False, dataset_name=name, train_split_name="train[:100%]", eval_split_name="train[100%:]")


def test_an_unwritable_datasets_cache_names_what_chose_it_not_a_flag_evaluate_lacks(tmp_path, monkeypatch):
    import datasets

    from hfspeech.data.labelled import load_evaluation_split
    from hfspeech.data.loading import load_audio_dataset

    root = write_tone_folder(tmp_path / "data", clips_per_class=1, rates=(16000,))
    (blocked := tmp_path / "a file").write_text("not a folder")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(blocked / "cache"))
    with pytest.raises(DataError, match="; set HF_DATASETS_CACHE to a folder you can write$") as raised:
        load_evaluation_split(DataSpec(source={"data_dir": str(root)}), ["high", "low", "noise"])  # as evaluate does
    assert "--cache_dir" not in str(raised.value)  # before: "set HF_DATASETS_CACHE (or --cache_dir)"
    with pytest.raises(DataError, match="; set --cache_dir to a folder you can write$"):
        load_audio_dataset(data_dir=str(root), cache_dir=str(blocked / "mine"))  # the one that chose the folder


def test_streaming_a_local_parquet_clone_counts_its_rows_from_the_files(tmp_path):
    from hfspeech.data.streaming import load_streamed_data
    from hfspeech.training.arguments import DataArguments
    from hfspeech.training.streaming import streaming_max_steps
    from transformers import TrainingArguments

    name = slices_corpus(tmp_path / "corpus", "clone")  # train: 12 clips, test: 3; no card with split sizes
    data = load_streamed_data(DataArguments(streaming=True, dataset_name=name).spec(), 16000, seed=0)
    # Before: "no 'validation' split and the size of 'train' is unknown" (give --max_eval_samples), then
    # "--streaming from a dataset whose size is unknown needs --max_steps N".
    assert len(data.evaluation["validation"]) == 1  # --validation_split_percentage 10 of 12
    assert data.num_train_rows == 11 == len(list(data.train))
    arguments = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4,
                                  num_train_epochs=2, report_to=[])
    assert streaming_max_steps(data.num_train_rows, arguments) == 6  # 3 batches an epoch


def test_a_decode_failure_is_not_cached_for_a_run_that_does_not_skip(tmp_path, monkeypatch):
    """The whole table is decoded keeping each bad file as a row; a run without --skip_bad_files then stopped on it,
    and after the user mended the cause outside the file (torchcodec or ffmpeg installed) the rerun read the
    failure back from the cache (and a --skip_bad_files rerun dropped a good file)."""
    import hfspeech.data.audio as audio
    from conftest import write_tone_folder
    from hfspeech.data.audio import AudioFileError
    from hfspeech.data.labelled import DataSpec, load_labelled_splits
    from hfspeech.data.prepare import prepare_dataset

    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    spec = DataSpec(source={"data_dir": str(root), "cache_dir": str(tmp_path / "cache")})
    target, real = str(root / "low" / "low_002.wav"), audio.check_audio_path

    def broken_decoder(path):
        if str(path) == target:
            raise AudioFileError(path, "cannot be decoded as audio: please install 'torchcodec'")
        return real(path)

    monkeypatch.setattr(audio, "check_audio_path", broken_decoder)
    with pytest.raises(AudioFileError, match="torchcodec"):
        prepare_dataset(load_labelled_splits(spec, 0), 16000)
    monkeypatch.setattr(audio, "check_audio_path", real)  # mended outside the file
    prepared, report = prepare_dataset(load_labelled_splits(spec, 0), 16000)
    assert not report.skipped and sum(len(split) for split in prepared.values()) == 18


def test_a_bad_file_outside_the_drawn_rows_keeps_the_shared_decode(tmp_path, monkeypatch):
    """Review 3: the cached table was removed whenever it held a failure, even by a run that never used that row
    and went on: every run of a --max_train_samples sweep decoded the whole table again."""
    import hfspeech.data.audio as audio

    root = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    raw = carved(root, 0, max_train_samples=8)
    drawn = {row["audio"]["path"] for split in raw.values() for row in split}
    target, real = next(str(path) for path in sorted(root.rglob("*.wav")) if str(path) not in drawn), \
        audio.check_audio_path
    monkeypatch.setattr(audio, "check_audio_path", lambda path: (_ for _ in ()).throw(AudioFileError(path, "corrupt"))
                        if str(path) == target else real(path))
    first, _ = prepare_dataset(raw, 16000)
    files = decoded_files(first)
    assert all(Path(name).exists() for name in files)
    again, _ = prepare_dataset(carved(root, 0, max_train_samples=8), 16000)
    assert decoded_files(again) == files
