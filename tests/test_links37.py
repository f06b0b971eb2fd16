"""Links, locks and file systems that are not a local disk (session 37): a class folder's broken link, link loops
in a walked folder, locks NFS refuses, a lock daemon that is not there, and links in a staged run folder."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli_output, save_random_baseline, synth_clip

RATE = 16000


def write_clips(folder: Path, labels=("0", "1"), per_label: int = 2) -> Path:
    for label in labels:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            sf.write(folder / label / f"{i}.wav", synth_clip("low", np.random.default_rng(i), RATE, 0.3), RATE)
    return folder


def test_a_class_folder_that_is_a_broken_link_is_named_not_dropped(tmp_path):
    """`data/2 -> /mnt/gone/2` (a disk not mounted): training went on with 2 classes, the only sign a warning calling
    `data/2` 'not an audio file (by its extension)'."""
    from hfspeech.data.folders import FolderLayoutError, list_audio_folder

    data = write_clips(tmp_path / "data")
    os.symlink(tmp_path / "gone" / "2", data / "2")
    with pytest.raises(FolderLayoutError, match=r"data/2: broken symbolic link \(to .*gone/2, which does not exist\)"):
        list_audio_folder(data)


@pytest.mark.parametrize("loop", ["notes", "deeper"])
def test_a_link_loop_in_a_walked_folder_is_one_line_not_a_traceback(tmp_path, loop):
    """`notes -> notes` in a class folder: `entry.is_dir()` raised ELOOP, a traceback in train, evaluate, stage and
    export --eval_dir. A loop named as audio (`a.wav -> b.wav -> a.wav`) is a bad clip, as in a manifest."""
    from hfspeech.data.folders import FolderLayoutError, list_audio_folder, walk_audio_files

    data = write_clips(tmp_path / "data")
    os.symlink("b.wav", data / "1" / "a.wav")
    os.symlink("a.wav", data / "1" / "b.wav")
    assert [path for _, path in walk_audio_files(data)[0]] == [str(data / label / name) for label, name in
                                                               (("0", "0.wav"), ("0", "1.wav"), ("1", "0.wav"),
                                                                ("1", "1.wav"), ("1", "a.wav"), ("1", "b.wav"))]
    os.symlink(loop if loop == "notes" else "other", data / "0" / "notes")
    if loop == "deeper":
        os.symlink("notes", data / "0" / "other")
    with pytest.raises(FolderLayoutError, match=r"0/notes: symbolic link loop \(to \w+, whose links lead round"):
        list_audio_folder(data)


def test_predict_names_a_broken_link_and_a_loop_as_failed_files_and_goes_on(tmp_path, capsys):
    """`predict d1 d2` with a loop in d2 stopped the whole run (exit 2, no rows, even for d1); a class folder's
    broken link was left out ('0 failed')."""
    good, bad = write_clips(tmp_path / "d1", ("0",), 1), write_clips(tmp_path / "d2", ("0",), 1)
    os.symlink("notes", bad / "0" / "notes")
    os.symlink(tmp_path / "gone", bad / "2")
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["0", "1"], 0.5)
    code, out, err = run_cli_output(["predict", str(model), str(good), str(bad), "--output", "-", "--format",
                                     "csv"], capsys)
    assert code == 1, err
    assert str(good / "0" / "0.wav") in out and str(bad / "0" / "0.wav") in out, out
    assert "notes: symbolic link loop" in err and "d2/2: broken symbolic link" in err, err


def refuse_folder_locks(monkeypatch, number: int = errno.EBADF) -> None:
    """`fcntl.flock` as NFS answers it for a folder (opened read-only: EBADF), or as any lock without a lock daemon
    (ENOLCK); files lock as before. The warning of an earlier test forgotten."""
    import fcntl
    import stat

    from hfspeech import output_folders

    real = fcntl.flock

    def flock(handle, operation):
        descriptor = handle if isinstance(handle, int) else handle.fileno()
        if number == errno.ENOLCK or stat.S_ISDIR(os.fstat(descriptor).st_mode):
            raise OSError(number, os.strerror(number))
        return real(handle, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(output_folders, "_unlocked_warned", [])


def test_a_folder_lock_the_file_system_refuses_is_warned_once(tmp_path, monkeypatch, caplog):
    """On NFS `held_alone`'s and the scratch folders' `flock` fail (EBADF): the lock counted as taken, so two `train`
    into one --output_dir both ran, without a word, where docs/training.md promises the second is refused."""
    from hfspeech.output_folders import held_alone, locked_scratch

    refuse_folder_locks(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="hfspeech.output_folders"):
        with held_alone(tmp_path / "out", "another run is writing here"):
            with held_alone(tmp_path / "out", "another run is writing here"):  # not refused: none to be had
                scratch, handle = locked_scratch(tmp_path / "out")
                os.close(handle)
    said = [record.getMessage() for record in caplog.records if "lock" in record.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith(f"warning: {tmp_path / 'out'}: no lock can be taken on this file system (Bad file "
                              "descriptor): a second run"), said


def test_pretrained_conversion_says_when_it_cannot_lock(tmp_path, monkeypatch, caplog):
    from hfspeech.models.whisper.pretrained import converting_alone

    refuse_folder_locks(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="hfspeech.output_folders"):
        with converting_alone(tmp_path / "cache" / "whisper-tiny.en"):
            pass
    assert any(f"{tmp_path / 'cache'}: no lock can be taken" in record.getMessage() for record in caplog.records)


def test_no_lock_daemon_is_one_line_naming_the_cache_and_the_way_out(tmp_path, monkeypatch, capsys):
    """An audiofolder with metadata.csv where every lock fails with ENOLCK: datasets' `FileLock` (builder.py)
    ended in filelock's traceback, as filelock falls back to a soft lock only on ENOSYS."""
    data = tmp_path / "data"
    data.mkdir()
    rows = ["file_name,label"]
    for i, label in enumerate(["a", "a", "b", "b"]):
        sf.write(data / f"{i}.wav", synth_clip("low", np.random.default_rng(i), RATE, 0.3), RATE)
        rows.append(f"{i}.wav,{label}")
    (data / "metadata.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", str(tmp_path / "cache"))
    refuse_folder_locks(monkeypatch, errno.ENOLCK)
    code, _, err = run_cli_output(["train", "--data_dir", str(data), "--output_dir", str(tmp_path / "out"),
                                   "--model_type", "cnn", "--num_train_epochs", "1"], capsys)
    assert code == 2, err
    assert f"error: {tmp_path / 'cache'}: No locks available (" in err and "HF_DATASETS_CACHE=" in err, err
    assert "Traceback" not in err


def test_the_lock_translation_names_the_file_of_the_error_and_nothing_else():
    from hfspeech.cli.system_errors import no_locks

    try:
        try:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK), "/mnt/share/cache/x.lock")
        except OSError as error:
            raise RuntimeError("while loading") from error
    except RuntimeError as error:
        assert str(no_locks(error)).startswith("/mnt/share/cache/x.lock: No locks available (")
    assert no_locks(OSError(errno.EACCES, "Permission denied", "x")) is None


def test_stage_copies_a_link_inside_the_run_refuses_one_out_with_the_way_out(tmp_path):
    """Every link in a run folder was refused (a Hub snapshot, git-annex or DVC layout could not be staged, and the
    message gave no way out); docs/publishing.md said only links out of it are."""
    from hfspeech.hub import StageError, stage_run

    run = save_random_baseline(tmp_path / "run", "cnn", ["a", "b"], 0.5)
    (run / "records").mkdir()
    shutil.move(run / "config.json", run / "records" / "config.json")
    os.symlink("records/config.json", run / "config.json")
    stage_run(run, tmp_path / "repo")
    assert (tmp_path / "repo" / "config.json").is_file() and not (tmp_path / "repo" / "config.json").is_symlink()
    shutil.move(run / "records" / "config.json", tmp_path / "config.json")
    (run / "config.json").unlink()
    os.symlink(tmp_path / "config.json", run / "config.json")
    with pytest.raises(StageError, match=r"run/config.json: a link out of the run folder \(to .*/config.json\); .*"
                                         r"`cp -rL .*run COPY`\) and stage the copy"):
        stage_run(run, tmp_path / "repo2")
    (run / "config.json").unlink()
    shutil.move(tmp_path / "config.json", run / "config.json")
    os.symlink("metrics.json", run / "metrics.json")  # a loop: `Path.resolve` raised RuntimeError
    with pytest.raises(StageError, match=r"metrics.json: a link that leads to no file"):
        stage_run(run, tmp_path / "repo2")


def test_a_linked_run_folder_gives_the_card_the_name_it_was_given(tmp_path):
    """`stage mcopy DEST`, `mcopy -> m`: the card was `your-name/m`, named after the link's target."""
    from hfspeech.hub import stage_run

    save_random_baseline(tmp_path / "m", "cnn", ["a", "b"], 0.5)
    os.symlink("m", tmp_path / "mcopy")
    stage_run(tmp_path / "mcopy", tmp_path / "repo")
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "your-name/mcopy" in card and "your-name/m\"" not in card and "your-name/m " not in card
