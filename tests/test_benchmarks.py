"""The benchmarks run end to end, and the speed-ups they measure do not change what training sees.

- each script under benchmarks/ runs from its command line (its `main(argv)`, called in this process: a
  Python start-up with torch saved per script) at a tiny size and writes JSON with its ratios (the data
  pipeline with one subprocess per measured run, as it runs for real; the others `--in-process`, which saves
  a Python start-up per run);
- `TransformedSplit` (numpy reads of the prepared Arrow data) yields exactly what `with_transform` (the
  list path it replaced) yielded: the same centre crops for evaluation, the same seeded random crops and
  augmentation for training, labels (ints or lists of ints) as they were;
- `CachedBackgroundNoise` adds exactly the noise audiomentations' `AddBackgroundNoise` adds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from audiomentations import AddBackgroundNoise
from datasets import Dataset, DatasetDict, Features, List, Value

from hfspeech.data.augment import AugmentationConfig, CachedBackgroundNoise, WaveformAugmenter
from hfspeech.data.transforms import EvalTransform, TrainTransform, TransformedSplit, attach_transforms

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def documented_fields(script: str) -> set[str]:
    """The JSON field names docs/benchmarks.md gives for `script` (its line "`script.py` JSON: ...")."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text()
    paragraph = text.split(f"`{script}.py` JSON:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`(\w+)`", paragraph))


def field_names(value) -> set[str]:
    """Every key, at any depth, of a JSON value."""
    if isinstance(value, dict):
        return set(value) | {name for item in value.values() for name in field_names(item)}
    if isinstance(value, list):
        return {name for item in value for name in field_names(item)}
    return set()


@contextmanager
def process_state_restored():
    """What a benchmark's `main` changes in the process that runs it, put back afterwards for the tests that
    share this process: sys.path (its helpers), the environment (offline, datasets' cache), datasets' cache
    folder and progress bars, transformers' verbosity, torch's threads."""
    import datasets
    import transformers

    saved_path, saved_environ, saved_threads = list(sys.path), dict(os.environ), torch.get_num_threads()
    saved_cache, bars = datasets.config.HF_DATASETS_CACHE, datasets.is_progress_bar_enabled()
    verbosity = transformers.utils.logging.get_verbosity()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_environ)
        torch.set_num_threads(saved_threads)
        datasets.config.HF_DATASETS_CACHE = saved_cache
        (datasets.enable_progress_bars if bars else datasets.disable_progress_bars)()
        transformers.utils.logging.set_verbosity(verbosity)


def run_benchmark(script: str, tmp_path: Path, *flags: str) -> dict:
    """`python benchmarks/<script>.py --work_dir ... --output ... flags`, as its `main(argv)` in this process
    (the subprocesses it starts for its measured runs still start), torch on one thread here and in them (conftest's
    `one_torch_thread` and `pytest_configure`); the JSON it wrote. One thread: a tiny CNN's training run took 1.5-2 s
    so, 5-10 s on two threads whenever the other core was busy (CI runs two test processes on two cores)."""
    output = tmp_path / f"{script}.json"
    with process_state_restored():
        spec = importlib.util.spec_from_file_location(f"benchmark_run_{script}", BENCHMARKS / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        returned = module.main(["--work_dir", str(tmp_path / "work"), "--output", str(output), *flags])
    written = json.loads(output.read_text())
    assert written == json.loads(json.dumps(returned))  # the file holds what the run measured
    return written


# --- the benchmark scripts -----------------------------------------------------------------------


def test_data_pipeline_benchmark_runs_and_reports_ratios(tmp_path):
    results = run_benchmark("data_pipeline", tmp_path, "--num-clips", "24", "--epochs", "2", "--num-proc", "1")
    (row,) = results["results"]
    for side in ("hfspeech", "reference"):
        assert [epoch["clips"] for epoch in row[side]["epochs"]] == [24, 24]  # every clip, every epoch
        assert row[side]["peak_rss_mb"] > 0
    assert all(row["ratio"][key] > 0 for key in ("epoch_1", "epoch_2_plus", "peak_rss"))
    assert set(results["meets_targets"]) == {"epoch_2_plus_at_least_3x"}
    assert results["in_process"] is False and results["machine"]["torch_threads"] >= 1  # where the numbers came from
    assert documented_fields("data_pipeline") <= field_names(results)  # the docs name what the file holds
    assert {p.suffix for p in Path(results["data_dir"]).rglob("*.*")} >= {".wav", ".flac", ".json"}


def test_memory_benchmark_runs_and_reports_growth(tmp_path):
    results = run_benchmark("memory", tmp_path, "--sizes", "12", "24", "--in-process")
    assert [run["clips"] for run in results["runs"]] == [12, 24]
    assert results["growth"]["peak_rss_mb"] > 0 and isinstance(results["meets_target"], bool)
    assert results["in_process"] is True  # its memory numbers are not comparable, and the file says so
    assert documented_fields("memory") <= field_names(results)  # the docs name what the file holds


def test_training_benchmark_runs_and_reports_ratios(tmp_path):
    results = run_benchmark("training", tmp_path, "--models", "cnn", "--clips-per-class", "4", "--epochs", "1",
                            "--in-process")
    (row,) = results["results"]
    for side in ("hfspeech", "reference"):
        assert row[side]["samples_per_s"] > 0 and len(row[side]["evaluations"]) == 1
    assert row["ratio"]["samples_per_s"] > 0 and row["ratio"]["end_to_end_speedup"] > 0
    assert results["seed"] == 0 and results["in_process"] is True
    assert documented_fields("training") <= field_names(results)  # the docs name what the file holds


# --- the per-epoch view --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared():
    """A prepared-looking data set: clips of varied lengths (some shorter than the crop), int labels."""
    rng = np.random.default_rng(0)
    lengths = [3000, 5000, 4000, 800, 6000, 4000, 4500, 7000, 1200, 4000, 5200]
    features = Features({"input_values": List(Value("float32")), "length": Value("int64"), "label": Value("int64")})

    def split(n):
        return Dataset.from_dict({"input_values": [rng.standard_normal(lengths[i % len(lengths)]).astype(np.float32)
                                                   for i in range(n)],
                                  "length": [lengths[i % len(lengths)] for i in range(n)],
                                  "label": [i % 3 for i in range(n)]}, features=features)

    return DatasetDict({"train": split(22), "validation": split(11)})


def old_views(dataset, max_samples, augmenter=None, seed=0):
    """How `attach_transforms` attached the transforms before: `with_transform`, rows as Python lists."""
    return {name: split.with_transform(TrainTransform(max_samples, augmenter, seed) if name == "train"
                                       else EvalTransform(max_samples), columns=["input_values", "label"])
            for name, split in dataset.items()}


def batches(view, batch_size=4):
    loader = torch.utils.data.DataLoader(view, batch_size=batch_size, collate_fn=list, shuffle=False)
    return [row for batch in loader for row in batch]


def test_eval_view_gives_the_same_centre_crops_as_the_list_path(prepared):
    new = attach_transforms(prepared, 1000, max_length_seconds=4.0)["validation"]
    old = old_views(prepared, 4000)["validation"]
    assert isinstance(new, TransformedSplit) and len(new) == len(old) == 11
    for i in range(len(new)):
        a, b = new[i], old[i]
        assert a["input_values"].dtype == np.float32 and np.array_equal(a["input_values"], b["input_values"])
        assert a["label"] == b["label"] and type(a["label"]) is int
    assert [len(row["input_values"]) for row in batches(new)] == [min(n, 4000) for n in prepared["validation"]["length"]]


@pytest.mark.parametrize("augmented", [False, True])
def test_train_view_draws_each_clip_from_its_row_whatever_the_batches(prepared, augmented):
    """Since session 26 the train view seeds each clip's crop and augmentation from (seed, epoch, row), so a run
    resumed mid-epoch draws as the uninterrupted one (the list path drew clip after clip, and no longer matches):
    batches of 4 or 3, in order or reversed, give every row the same clip; another epoch another crop."""
    config = AugmentationConfig(noise_snr_db=(5.0, 10.0), noise_prob=1.0, gain_db=6.0)
    augmenter = WaveformAugmenter(config, 1000, seed=3) if augmented else None
    new = attach_transforms(prepared, 1000, max_length_seconds=4.0, augmenter=augmenter, seed=7)["train"]
    by_four, by_three = batches(new), batches(new, batch_size=3)
    backwards = [row for batch in torch.utils.data.DataLoader(new, batch_size=4, collate_fn=list,
                                                              sampler=list(reversed(range(len(new))))) for row in batch]
    assert len(by_four) == len(by_three) == len(backwards) == 22
    for a, b, c in zip(by_four, by_three, reversed(backwards)):
        assert np.array_equal(a["input_values"], b["input_values"])
        assert np.array_equal(a["input_values"], c["input_values"])
    long_rows = [i for i, n in enumerate(prepared["train"]["length"]) if n > 4000]
    starts = [np.asarray(prepared["train"][i]["input_values"], np.float32)[:4000] for i in long_rows]
    assert not all(np.array_equal(by_four[i]["input_values"], s) for i, s in zip(long_rows, starts))  # random crops
    new.set_epoch(1)
    later = batches(new)
    assert not all(np.array_equal(later[i]["input_values"], by_four[i]["input_values"]) for i in long_rows)


def test_view_passes_multi_label_lists_through_and_rejects_unprepared_data():
    features = Features({"input_values": List(Value("float32")), "label": List(Value("int64"))})
    split = Dataset.from_dict({"input_values": [np.ones(5, np.float32), np.ones(7, np.float32)],
                               "label": [[0, 2], [1]]}, features=features)
    view = TransformedSplit(split, EvalTransform(None))
    assert view[0]["label"] == [0, 2] and view[1]["label"] == [1] and len(view[1]["input_values"]) == 7
    assert view[-1]["label"] == [1]
    with pytest.raises(IndexError, match="out of range"):
        view[2]
    with pytest.raises(ValueError, match="input_values"):
        TransformedSplit(split.remove_columns("input_values"), EvalTransform(None))


# --- noise caching -------------------------------------------------------------------------------


@pytest.fixture
def noise_files(tmp_path):
    rng = np.random.default_rng(1)
    mono = tmp_path / "mono.wav"
    sf.write(mono, rng.standard_normal(16000 * 2).astype(np.float32) * 0.1, 16000)  # at the target rate
    stereo = tmp_path / "stereo.flac"
    sf.write(stereo, rng.standard_normal((22050, 2)).astype(np.float32) * 0.1, 22050)  # resampled, downmixed
    return [str(mono), str(stereo)]


def test_cached_background_noise_adds_exactly_what_audiomentations_adds(noise_files):
    original = AddBackgroundNoise(noise_files, min_snr_db=3.0, max_snr_db=12.0, p=1.0)
    cached = CachedBackgroundNoise(noise_files, min_snr_db=3.0, max_snr_db=12.0, p=1.0)
    rng = np.random.default_rng(2)
    for seed in range(12):
        clip = rng.standard_normal(int(rng.uniform(0.2, 4.0) * 16000)).astype(np.float32)  # shorter and longer
        outputs = []
        for transform in (original, cached):
            random.seed(seed)
            np.random.seed(seed)
            outputs.append(transform(clip, 16000))
        assert np.array_equal(*outputs)
    assert len(cached._cache) == 2


def test_noise_is_read_once_per_process_within_the_size_limit(noise_files, tmp_path):
    clip = np.random.default_rng(3).standard_normal(8000).astype(np.float32)
    cached = CachedBackgroundNoise(noise_files[:1], min_snr_db=5.0, max_snr_db=5.0, p=1.0)
    first = cached(clip, 16000)
    Path(noise_files[0]).rename(tmp_path / "moved.wav")  # gone from disk: only the cache has it now
    assert np.isfinite(cached(clip, 16000)).all() and not np.array_equal(first, clip)
    uncached = CachedBackgroundNoise([str(tmp_path / "moved.wav")], min_snr_db=5.0, max_snr_db=5.0, p=1.0, cache_mb=0)
    uncached(clip, 16000)
    Path(tmp_path / "moved.wav").unlink()
    with pytest.raises(Exception):  # over the limit: read from disk on every call, as audiomentations does
        uncached(clip, 16000)


def test_augmenter_with_a_noise_folder_is_reproducible(noise_files):
    folder = str(Path(noise_files[0]).parent)
    config = AugmentationConfig(noise_dir=folder, noise_prob=1.0)
    clip = np.random.default_rng(4).standard_normal(12000).astype(np.float32)
    first, again = (WaveformAugmenter(config, 16000, seed=5) for _ in range(2))
    runs = [[augmenter(clip) for _ in range(3)] for augmenter in (first, again)]
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert isinstance(first.transform.transforms[0].transforms[0], CachedBackgroundNoise)
