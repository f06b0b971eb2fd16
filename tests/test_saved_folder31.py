"""A dataset the user saved (`save_to_disk`) is theirs: its decoded audio goes to the datasets cache
(`hfspeech-prepared`, as docs/training.md's caches table says), not into their folder (a datasets-user audit: two
seeds grew a 60 KB folder of paths to 59 MB of `cache-*.arrow` files there), and so does the labels' cast, a copy
of the whole split (its audio bytes too, for a dataset holding them)."""

from __future__ import annotations

from pathlib import Path

from datasets import Audio, Dataset


def test_decoding_a_saved_dataset_writes_nothing_into_the_users_folder(tone_folder, tmp_path, monkeypatch):
    import datasets

    from hfspeech.data.labels import encode_labels
    from hfspeech.data.loading import load_audio_dataset
    from hfspeech.data.prepare import prepare_dataset

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    files = sorted(tone_folder.glob("*/*.wav"))[:6]
    saved = tmp_path / "saved"
    Dataset.from_dict({"audio": [str(f) for f in files], "label": [f.parent.name for f in files]}).cast_column(
        "audio", Audio()).save_to_disk(str(saved))
    before = sorted(p.relative_to(saved) for p in saved.rglob("*"))
    prepared, _ = prepare_dataset(encode_labels(load_audio_dataset(dataset_name=str(saved))), 16000)
    assert len(prepared["train"]) == 6
    assert sorted(p.relative_to(saved) for p in saved.rglob("*")) == before
    decoded = Path(prepared["train"].cache_files[0]["filename"])
    assert decoded.parent == tmp_path / "cache" / "hfspeech-prepared"
