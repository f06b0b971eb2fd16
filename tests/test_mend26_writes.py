"""One rule for a write that a full disk refuses (`errors.disk_write_failure`), and `hfspeech stage`'s destination
checked by the rules of every output folder (`output_folders.not_a_folder`).

The full disk is `ulimit -f` (`full_disk_past`, set for a moment in this process, as tests/test_interruption_audit.py
sets it in a subprocess): a real write failing past a byte count, EFBIG where a full disk says ENOSPC."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import resource
import signal
import stat
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from tests.conftest import save_random_baseline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["high", "low", "noise"]
TINY = dict(conv_channels=[4, 8], n_mels=16, apply_spec_augment=False)  # weights 3.1 kB, training_args.bin 5.8 kB


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("model") / "cnn", "cnn", LABELS, 0.5, **TINY)


@pytest.mark.skipif(not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)),
                    reason="needs /dev/full, a device that is always full")
def test_torch_save_on_a_full_disk_is_a_write_failure_by_the_one_rule(tmp_path):
    """torch.save's RuntimeError was recognised only around checkpoints; every other `writing_to` let it through
    as a traceback (it caught OSError only)."""
    import torch

    from hfspeech.errors import OutputWriteError, disk_write_failure, writing_to

    with pytest.raises(RuntimeError) as raised:
        torch.save({"weights": torch.zeros(10_000)}, "/dev/full")
    assert disk_write_failure(raised.value) == "torch could not write its file"
    with pytest.raises(OutputWriteError, match=f"^{tmp_path}: cannot write .torch could not write its file.; redo"):
        with writing_to(tmp_path, "redo"):
            torch.save({"weights": torch.zeros(10_000)}, "/dev/full")
    with pytest.raises(RuntimeError, match="not a write"):  # other RuntimeErrors are left alone
        with writing_to(tmp_path, "redo"):
            raise RuntimeError("not a write")


def test_an_error_raised_while_handling_a_full_disk_is_that_full_disk():
    """datasets' `map` finalises its writer again after the close failed: Arrow's `ValueError: I/O operation on
    closed file` (no errno) hid the `File too large` underneath (the frozen-feature cache's traceback)."""
    from hfspeech.errors import disk_write_failure

    try:
        try:
            raise OSError(errno.EFBIG, "File too large")
        except OSError:
            raise ValueError("I/O operation on closed file")
    except ValueError as error:
        assert disk_write_failure(error) == "File too large"
    assert disk_write_failure(ValueError("I/O operation on closed file")) is None


@contextlib.contextmanager
def full_disk_past(size: int) -> Iterator[None]:
    """Inside, this process may not grow a file past `size` bytes (`ulimit -f`): a write past it fails with EFBIG.
    Printed output (progress bars) goes to memory meanwhile: pytest captures it in a file, which the limit cuts."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, limits[1]))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, handler)


def test_the_model_saved_at_the_end_of_training_on_a_full_disk_is_one_line(model, tmp_path):
    """`hfspeech train` wrote the final model, then torch.save's training_args.bin on a full disk: a traceback."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Trainer, TrainingArguments

    from hfspeech.errors import OutputWriteError
    from hfspeech.models import register
    from hfspeech.training.run import save_model

    register()
    run = tmp_path / "run"
    trainer = Trainer(model=AutoModelForAudioClassification.from_pretrained(model),
                      args=TrainingArguments(str(run), report_to=[], use_cpu=True),
                      processing_class=AutoFeatureExtractor.from_pretrained(model))
    with pytest.raises(OutputWriteError, match=f"^{run}: cannot write .torch could not write its file.; the model "
                                               "was not saved whole; make room and run the same command again$"):
        with full_disk_past(4000):  # the weights (3.1 kB) fit, torch's training_args.bin (5.8 kB) does not
            save_model(trainer)
    # nothing half-saved moved in (training.final_save), and no hidden folder left
    assert not (run / "model.safetensors").exists() and not [p for p in run.iterdir() if p.name.startswith(".")]


def test_frozen_features_that_fill_the_disk_are_one_line_naming_the_cache_folder(tmp_path):
    """`train --freeze_base_model --cache_frozen_features` on a full disk: Arrow's ValueError, a traceback."""
    from datasets import Dataset, load_from_disk
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from hfspeech.errors import OutputWriteError
    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.data.cache_users import TEMPORARY_NAME
    from hfspeech.training.feature_cache import cached_feature_views

    save_tiny_ssl_model(str(tmp_path / "tiny"), "wav2vec2", LABELS)
    rng = np.random.default_rng(0)
    clips = Dataset.from_dict({"input_values": [rng.normal(size=8000).astype(np.float32) for _ in range(6)],
                               "label": [0, 1, 2, 0, 1, 2]})
    clips.save_to_disk(str(tmp_path / "clips"))
    dataset = {"train": load_from_disk(str(tmp_path / "clips"))}
    model = AutoModelForAudioClassification.from_pretrained(tmp_path / "tiny")
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "tiny")
    with pytest.raises(OutputWriteError, match=f"^{tmp_path / 'clips'}: cannot write .File too large.; the frozen "
                                               "features were not cached; make room, or set HF_DATASETS_CACHE"):
        with full_disk_past(1000):
            cached_feature_views(model, extractor, dataset, 16000, 0.5)
    # and datasets' half-written `tmp*` file is gone: kept, it outlived the one-hour sweep and the rerun after
    # making room for one encode failed again (session 33's disk audit)
    assert [path.name for path in (tmp_path / "clips").iterdir() if TEMPORARY_NAME.fullmatch(path.name)] == []


def test_a_model_saved_by_tiny_model_on_a_full_disk_names_its_folder(tmp_path):
    """The CLI's last resort said `error: cannot write (File too large); a disk it writes to ...`, naming no
    folder, and not that the folder left behind is refused by the next run until deleted (the API: a
    SafetensorError)."""
    from hfspeech.errors import OutputWriteError
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    output = tmp_path / "out"
    with pytest.raises(OutputWriteError, match=f"^{output}: cannot write .File too large.; nothing was written .the "
                                               "folder is as it was."):
        with full_disk_past(20_000):  # config.json fits, the weights (180 kB) do not
            save_tiny_ssl_model(str(output), "wav2vec2", LABELS)


def test_an_average_saved_on_a_full_disk_names_its_folder(model, tmp_path):
    from hfspeech.errors import OutputWriteError
    from hfspeech.training.averaging import average_runs

    other = save_random_baseline(tmp_path / "other", "cnn", LABELS, 0.5, **TINY)
    output = tmp_path / "out"
    with pytest.raises(OutputWriteError, match=f"^{output}: cannot write .File too large.; nothing was written "
                                               ".the folder is as it was."):
        with full_disk_past(2000):
            average_runs([str(model), str(other)], str(output))


def test_a_stage_that_fills_the_disk_names_the_destination_not_the_runs_file(model, tmp_path):
    """shutil's OSError names the file copied from first: `RUN/model.safetensors: cannot write`, as if the run's
    own disk were full; and the API raised a plain OSError."""
    from hfspeech.errors import OutputWriteError
    from hfspeech.hub import stage_run

    dest = tmp_path / "staged"
    with pytest.raises(OutputWriteError, match=f"^{dest}: cannot write .File too large.; nothing was staged"):
        with full_disk_past(2000):
            stage_run(model, dest)
    assert not dest.exists() and not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_a_stage_destination_inside_a_file_is_refused_before_anything_is_written(model, tmp_path):
    """`notes.txt/out` was a FileExistsError traceback from mkdir, after the run was checked."""
    from hfspeech.hub import StageError, stage_run

    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    with pytest.raises(StageError, match=f"^{notes}/out: is inside {notes}, a file, not a folder; give a new"):
        stage_run(model, notes / "out")
    assert notes.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_link_to_nothing_is_refused_as_an_output_folder_by_every_command(model, tmp_path):
    """A dangling link passed every check (it does not "exist"), then creating the folder failed: a
    FileExistsError traceback from `hfspeech stage`, `tiny-model` and the other commands that write a folder."""
    from hfspeech.errors import UsageError
    from hfspeech.hub import StageError, stage_run
    from hfspeech.output_folders import check_output_folder

    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere")
    expected = f"{link}: is a link to {tmp_path / 'nowhere'}, which does not exist; give a new or empty folder"
    with pytest.raises(StageError, match=f"^{expected}$"):
        stage_run(model, link)
    with pytest.raises(UsageError, match=f"^--output_dir {expected}$"):
        check_output_folder(link, "--output_dir")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
