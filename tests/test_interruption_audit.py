"""A hostile machine: a disk that fills up (or a file-size limit) while hfspeech writes, and what a run that was
stopped half-way leaves for the next one. Each write that fails is one `error:` line naming the path, never a
traceback or an aborted process, and leaves nothing half-written that a later run would trust.

The full disk is `ulimit -f` (RLIMIT_FSIZE) in a subprocess: a real write failing at a byte count, as on a
full disk (EFBIG instead of ENOSPC), with no timing involved."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset

from tests.conftest import save_random_baseline, synth_clip

TINY = dict(n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)
LABELS = ["low", "high", "noise"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("model") / "cnn", "cnn", LABELS, 0.5, **TINY)


def write_clips(folder: Path, count: int, per_label: bool = False) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        kind = LABELS[i % len(LABELS)]
        path = folder / (kind if per_label else "") / f"{kind}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, synth_clip(kind, rng, 16000, 0.5), 16000)
        paths.append(str(path))
    return paths


def hfspeech_process(command: list[str], file_size_limit: int, env: dict | None = None):
    """`command` in a subprocess whose files may not grow past `file_size_limit` bytes (a full disk)."""

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size,
                          env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])


def hfspeech(args: list[str], file_size_limit: int, env: dict | None = None):
    return hfspeech_process([sys.executable, "-m", "hfspeech.cli", *args], file_size_limit, env)


END_OF_COMMAND = "--- hfspeech command ended, exit status "
# `hfspeech.cli.main` on each command in turn, as `python -m hfspeech.cli` runs one, its exit status after its stderr
COMMANDS_IN_ONE_PROCESS = f"""
import json, sys
from hfspeech.cli import main
for args in json.loads(sys.argv[1]):
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    print("{END_OF_COMMAND}" + str(code), file=sys.stderr, flush=True)
"""


def hfspeech_commands(commands: list[list[str]], file_size_limit: int) -> list[subprocess.CompletedProcess]:
    """Each command's (exit status, stderr), all run in one process under `file_size_limit`: the limit is each
    file's, so one command's writes leave the next its whole room, and torch and transformers' start-up (about
    8 s a process) is paid once. The process itself must end normally (an abort in a destructor is exit -6)."""
    done = hfspeech_process([sys.executable, "-c", COMMANDS_IN_ONE_PROCESS, json.dumps(commands)], file_size_limit)
    pieces = re.split(re.escape(END_OF_COMMAND) + r"(-?\d+)\n", done.stderr)  # [stderr, status, ..., rest]
    assert done.returncode == 0 and len(pieces) == 2 * len(commands) + 1, (done.returncode, done.stderr[-3000:])
    return [subprocess.CompletedProcess(args, int(pieces[2 * i + 1]), "", pieces[2 * i])
            for i, args in enumerate(commands)]


def assert_one_error_line(result, *parts: str, code: int = 2) -> None:
    err = result.stderr
    assert result.returncode == code and "Traceback" not in err, (result.returncode, err[-3000:])
    line = next(line[line.index("error: "):] for line in err.splitlines() if "error: " in line)  # after a progress bar
    assert all(part in line for part in parts), line


def test_predict_output_on_a_full_disk_is_one_line_and_the_file_ends_with_whole_rows(model, tmp_path, capsys):
    from hfspeech.cli import main as cli

    clips = write_clips(tmp_path / "clips", 6)
    outputs = [tmp_path / "preds.jsonl", tmp_path / "preds.csv"]
    results = hfspeech_commands([["predict", str(model), *clips, "--output", str(output)] for output in outputs],
                                file_size_limit=700)
    for output, result in zip(outputs, results):
        assert_one_error_line(result, str(output), "cannot write", "run the same command again to resume")
        text = output.read_text()
        assert text.endswith("\n") and 0 < len(text) <= 700  # no row cut off mid-way
        # Run again with room: it resumes, and every file is in the output exactly once.
        assert cli(["predict", str(model), *clips, "--output", str(output)]) == 0
        if output.name.endswith(".jsonl"):
            paths = [json.loads(line)["path"] for line in output.read_text().splitlines()]
        else:
            paths = [line.split(",")[0] for line in output.read_text().splitlines()[1:]]
        assert sorted(paths) == sorted(clips)


def test_an_export_that_fills_the_disk_is_one_line_and_leaves_no_partial_folder(model, tmp_path):
    """TorchScript: torch's own file writer threw in a destructor on a failed write and aborted the process
    (`terminate called after throwing an instance of 'c10::Error'`, exit -6): also at the end of every
    training run of a baseline, whose run is traced beside it. ONNX: a traceback."""
    formats = ["torchscript", "onnx"]
    destinations = [tmp_path / fmt / "exported" for fmt in formats]
    for destination in destinations:
        destination.parent.mkdir()
    results = hfspeech_commands([["export", str(model), "--format", fmt, "--output", str(destination)]
                                 for fmt, destination in zip(formats, destinations)], file_size_limit=20_000)
    for destination, result in zip(destinations, results):
        assert_one_error_line(result, str(destination), "cannot write", "nothing was exported")
        parent = destination.parent
        assert not destination.exists() and not [p for p in parent.iterdir() if "partial" in p.name]


# hfspeech's Python API without a training run's start-up: the listing and the decoding caches
LOAD_AND_PREPARE = """
import sys
from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.prepare import prepare_dataset
from hfspeech.errors import HfspeechError
try:
    prepare_dataset(load_audio_dataset(data_dir=sys.argv[1]), 16000)
except HfspeechError as error:
    sys.exit(f"error: {error}")
"""


def test_the_audio_folder_listing_on_a_full_disk_is_one_line_and_leaves_no_partial_folder(tmp_path):
    write_clips(tmp_path / "data", 6, per_label=True)
    cache = tmp_path / "cache"
    result = hfspeech_process([sys.executable, "-c", LOAD_AND_PREPARE, str(tmp_path / "data")], 100,
                              {"HF_DATASETS_CACHE": str(cache)})
    assert_one_error_line(result, str(cache / "hfspeech-audiofolder"), "cannot write", "HF_DATASETS_CACHE", code=1)
    assert list((cache / "hfspeech-audiofolder").iterdir()) == []  # no `.partial-PID` folder left behind


def test_decoding_into_a_full_disk_is_one_line_naming_the_cache(tmp_path):
    write_clips(tmp_path / "data", 6, per_label=True)
    cache = tmp_path / "cache"
    # The listing (a few kB) fits, the decoded audio (6 clips of 0.5 s as float32: 48 kB) does not.
    result = hfspeech_process([sys.executable, "-c", LOAD_AND_PREPARE, str(tmp_path / "data")], 20_000,
                              {"HF_DATASETS_CACHE": str(cache)})
    assert_one_error_line(result, str(cache / "hfspeech-audiofolder"), "cannot write",
                          "the decoded audio was not cached", code=1)


@pytest.fixture
def prepared_split() -> Dataset:
    rng = np.random.default_rng(1)
    clips = [synth_clip(LABELS[i % 3], rng, 16000, 0.5) for i in range(6)]
    return Dataset.from_dict({"input_values": clips, "label": [i % 3 for i in range(6)]})


def test_a_teacher_logits_cache_left_damaged_is_computed_again(model, prepared_split, tmp_path, caplog):
    """A disk that filled while the cache's `dataset_info.json` was written left it empty: every later run
    stopped in `json.load` with a traceback, until the user found and deleted the folder."""
    from hfspeech.training.teacher_cache import teacher_logits

    cache = tmp_path / "teacher_cache"
    first = teacher_logits(str(model), prepared_split, 16000, LABELS, cache_dir=str(cache))
    (folder,) = list(cache.iterdir())
    (folder / "dataset_info.json").write_text("")
    again = teacher_logits(str(model), prepared_split, 16000, LABELS, cache_dir=str(cache))
    np.testing.assert_allclose(again, first, rtol=1e-5)
    assert "cannot be read" in caplog.text and "computing them again" in caplog.text
    # Rewritten whole: the next run reads it without a word.
    caplog.clear()
    third = teacher_logits(str(model), prepared_split, 16000, LABELS, cache_dir=str(cache))
    np.testing.assert_allclose(third, first, rtol=1e-5)
    assert "cannot be read" not in caplog.text and [p.name for p in cache.iterdir()] == [folder.name]


def test_a_teacher_logits_cache_that_cannot_be_written_is_a_warning_not_a_crash(model, prepared_split, tmp_path,
                                                                                caplog):
    from hfspeech.training.teacher_cache import teacher_logits

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache's folder would go")
    logits = teacher_logits(str(model), prepared_split, 16000, LABELS, cache_dir=str(blocker / "cache"))
    assert logits.shape == (6, 3) and "teacher logits not cached" in caplog.text


@pytest.mark.skipif(not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)),
                    reason="needs /dev/full, a device that is always full (here missing, or not a device)")
def test_a_checkpoint_that_torch_cannot_write_is_one_line_naming_the_output_dir():
    """torch.save on a full disk raises a RuntimeError in its C++ writer's words (`[enforce fail at
    inline_container.cc:672] . unexpected pos ...`), with no errno and no file name: that traceback was all a
    user saw when the disk filled during a checkpoint."""
    import torch

    from hfspeech.errors import OutputWriteError
    from hfspeech.training.checkpoints import checkpoint_write_errors

    with pytest.raises(OutputWriteError, match="runs/kws: cannot write a checkpoint .* resumes from the last complete"):
        with checkpoint_write_errors("runs/kws"):
            torch.save({"exp_avg": torch.zeros(10_000)}, "/dev/full")
    with pytest.raises(RuntimeError, match="not a write"):  # other errors of a training run are left alone
        with checkpoint_write_errors("runs/kws"):
            raise RuntimeError("not a write")


def test_training_that_fills_the_disk_at_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    import datasets

    from hfspeech.training.run import main as train

    write_clips(tmp_path / "data", 9, per_label=True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    flags = ["--data_dir", str(tmp_path / "data"), "--model_type", "cnn", "--max_length_seconds", "0.5",
             "--config_overrides", json.dumps({"conv_channels": [4, 8], "n_mels": 16}), "--num_train_epochs", "1"]
    train([*flags, "--output_dir", str(tmp_path / "first"), "--save_strategy", "no"])  # caches the decoded audio
    run = tmp_path / "run"
    # The run's records fit under the limit, the checkpoint's optimizer state (11 kB) does not.
    result = hfspeech(["train", *flags, "--output_dir", str(run)], file_size_limit=8000,
                      env={"HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert_one_error_line(result, f"{run}: cannot write a checkpoint")


def test_a_second_predict_into_an_output_being_written_is_refused(model, tmp_path, capsys):
    """Two runs with one --output (a job started twice, a resume while the first still runs) both appended:
    every file the second run classified before the first reached it was in the output twice."""
    from hfspeech.cli import main as cli
    from hfspeech.inference.outputs import PredictionWriter

    clips = write_clips(tmp_path / "clips", 3)
    output = tmp_path / "preds.jsonl"
    assert cli(["predict", str(model), clips[0], "--output", str(output)]) == 0
    before = output.read_bytes()
    capsys.readouterr()
    with PredictionWriter(str(output)):  # the other run, still writing
        code = cli(["predict", str(model), *clips, "--output", str(output)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "another `hfspeech predict` is writing" in err, err
    assert output.read_bytes() == before
    assert cli(["predict", str(model), *clips, "--output", str(output)]) == 0  # once it has ended: resumed
    assert len(output.read_text().splitlines()) == 3


def test_an_output_inside_a_file_is_one_line_before_any_work(model, tmp_path, capsys):
    """`--output notes.txt/run`: mkdir failed deep inside (`[Errno 17] File exists: 'notes.txt'` after the model
    loaded, for predict; a FileExistsError traceback for export)."""
    from hfspeech.cli import main as cli

    blocker = tmp_path / "notes.txt"
    blocker.write_text("the user's notes")
    clip = write_clips(tmp_path / "clips", 1)[0]
    for command in (["predict", str(model), clip, "--output", str(blocker / "preds.jsonl")],
                    ["export", str(model), "--format", "torchscript", "--output", str(blocker / "exported")],
                    ["evaluate", "--model", str(model), "--data_dir", str(tmp_path / "clips"),
                     "--output_dir", str(blocker / "eval")]):
        code = cli(command)
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0, (command[0], err)
        assert f"is inside {blocker}, a file, not a folder" in err, (command[0], err)
    assert blocker.read_text() == "the user's notes"
