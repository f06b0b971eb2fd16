"""The `hfspeech` command judged as a Unix tool: `--version`, argparse mistakes as one `error:` line with exit
code 2 (not the usage block), a mistyped flag named with the nearest one on every command, no progress bar
written into a log, the same flag name for the same thing, and no warnings a user cannot act on."""

from __future__ import annotations

import io
import types
import warnings
from pathlib import Path

import pytest

import hfspeech
from conftest import run_cli_output, save_random_baseline
from hfspeech.cli.export import export_parser

def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    return run_cli_output(args, capsys)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_printed_on_stdout_with_exit_code_0(flag, capsys):
    code, out, err = run_cli([flag], capsys)  # was: "'--version' is not an hfspeech command", exit code 2
    assert (code, out, err) == (0, f"hfspeech {hfspeech.__version__}\n", "")


@pytest.mark.parametrize("args, message", [
    (["predict", "m", "a.wav", "--top_k", "0"], "error: argument --top_k/--top-k: must be above 0, got 0"),
    (["predict"], "error: the following arguments are required: model"),
    (["serve", "m", "--port", "99999"], "error: argument --port: must be 0 to 65535, got 99999"),
    (["export", "m", "--format", "tflite"], "error: argument --format: invalid choice: 'tflite'"),
])
def test_a_usage_mistake_is_one_error_line_on_stderr_with_exit_code_2(args, message, capsys):
    code, out, err = run_cli(args, capsys)  # was: eight lines of usage, then "hfspeech predict: error: ..."
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith(message), err


@pytest.mark.parametrize("args, typo, nearest", [
    (["predict", "m", "a.wav", "--top_j", "3"], "--top_j", "--top_k"),
    (["stream", "m", "--min_window", "2", "--treshold", "0.3"], "--treshold", "--threshold"),
    (["average", "a", "b", "--output_dri", "x"], "--output_dri", "--output_dir"),  # was: "required: --output_dir"
])
def test_a_mistyped_flag_is_named_with_the_nearest_one(args, typo, nearest, capsys):
    code, out, err = run_cli(args, capsys)  # was: "unrecognized arguments: --top_j 3", no hint
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert f"unknown flag(s) ['{typo}'] (did you mean ['{nearest}']?)" in err, err


@pytest.mark.parametrize("command, typo, nearest", [
    ("train", "--num_train_epohcs", "--num_train_epochs"),
    ("distill", "--student_modle_type", "--student_model_type"),
    ("cross-validate", "--lerning_rate", "--learning_rate"),
])
def test_a_mistyped_recipe_flag_is_named_with_the_nearest_one(command, typo, nearest, tmp_path, capsys):
    args = [command, "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), typo, "1"]
    if command == "distill":
        teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
        args += ["--teacher", str(teacher)]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"unknown flag(s) ['{typo}']" in err and f"(did you mean ['{nearest}']?)" in err, err
    assert not (tmp_path / "out").exists()


def test_a_mistyped_evaluate_flag_is_named_with_the_nearest_one(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", str(tmp_path), "--data_dir", str(tmp_path), "--bach_size", "2"], capsys)
    assert code == 2 and "(did you mean ['--batch_size']?)" in err, err


def test_demo_refuses_a_mistyped_training_flag_before_generating_any_data(tmp_path, capsys):
    out_dir = tmp_path / "demo"  # was: minutes of espeak-ng keywords, then the first training run refused it
    code, _, err = run_cli(["demo", "--output_dir", str(out_dir), "--pretrained", "none", "--num_train_epohcs",
                            "1"], capsys)
    assert code == 2 and "(did you mean ['--num_train_epochs']?)" in err, err
    assert not out_dir.exists()


def test_demo_data_writes_no_progress_bar_into_a_log_unless_asked(tmp_path, capsys):
    events = ["--kind", "keywords", "--keywords", "yes", "no", "--clips_per_class", "1"]
    code, _, err = run_cli(["demo-data", str(tmp_path / "quiet"), *events], capsys)  # stderr: not a terminal
    assert code == 0 and err == "", err  # was: a tqdm bar, \r by \r, in the log
    code, _, err = run_cli(["demo-data", str(tmp_path / "asked"), *events, "--progress"], capsys)
    assert code == 0 and "espeak-ng keywords" in err
    code, out, err = run_cli(["demo-data", str(tmp_path / "old"), *events, "--no_progress"], capsys)
    assert (code, out, err) == (0, f"keywords dataset: {tmp_path / 'old'}\n", "")  # the older flag still works


def test_export_takes_output_dir_as_every_other_command_that_writes_a_folder():
    assert export_parser().parse_args(["m", "--output_dir", "x"]).output == "x"
    assert export_parser().parse_args(["m", "--output-dir", "x"]).output == "x"
    assert export_parser().parse_args(["m", "--output", "x"]).output == "x"


def test_int8_export_prints_no_image_processor_warning_for_an_audio_model(tmp_path, capsys):
    import logging

    from transformers.utils import logging as transformers_logging

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4, 8], n_mels=16)
    transformers_logging.warning_once.cache_clear()  # transformers says it once per process
    seen = logging.Handler()
    seen.records = []
    seen.emit = seen.records.append
    logging.getLogger("transformers").addHandler(seen)  # transformers' loggers do not reach the root logger
    try:
        code, _, err = run_cli(["export", str(model), "--output_dir", str(tmp_path / "onnx"), "--quantize", "int8"],
                                capsys)
    finally:
        logging.getLogger("transformers").removeHandler(seen)
    assert code == 0 and (tmp_path / "onnx" / "model_quantized.onnx").is_file(), err
    shown = [record.getMessage() for record in seen.records if record.levelno >= logging.WARNING]
    assert not [message for message in shown if "image processor" in message], shown  # was: a `use_fast` note


def test_training_commands_hide_the_trainers_mtime_note_on_quick_checkpoints(tmp_path):
    from transformers import Trainer

    from hfspeech.training.trainer import without_checkpoint_mtime_note  # moved from the CLI (test_cli_gaps.py)

    for step in (1, 2):  # saved within one second, as the checkpoints of every short run are
        (tmp_path / f"checkpoint-{step}").mkdir()
    trainer = types.SimpleNamespace(state=types.SimpleNamespace(best_model_checkpoint=None))
    trainer._sorted_checkpoints = lambda **kwargs: Trainer._sorted_checkpoints(trainer, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with without_checkpoint_mtime_note():
            ordered = Trainer._sorted_checkpoints(trainer, output_dir=str(tmp_path), use_mtime=True)
    assert [Path(path).name for path in ordered] == ["checkpoint-1", "checkpoint-2"]
    assert not [w for w in caught if "mtime" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device every write to fails on")
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_on_a_full_disk_is_one_line_not_a_traceback(flag):
    import subprocess
    import sys

    with open("/dev/full", "w") as full:  # was: OSError: [Errno 28] No space left on device, with its traceback
        done = subprocess.run([sys.executable, "-m", "hfspeech.cli", flag], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: stdout: cannot write (No space left on device)")
    assert len(done.stderr.splitlines()) == 1, done.stderr


class InterruptedAudio(io.BytesIO):
    """stdin of raw PCM that a Ctrl-C ends: KeyboardInterrupt once the bytes are read, as from `arecord`."""

    def read1(self, size=-1):
        data = super().read1(size)
        if not data:
            raise KeyboardInterrupt
        return data


def test_ctrl_c_ends_a_stream_with_its_counts_then_one_line_and_exit_code_130(tmp_path, monkeypatch, capsys):
    import json

    import numpy as np

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    pcm = (np.random.default_rng(0).normal(0, 0.1, 16000 * 3) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=InterruptedAudio(pcm), isatty=lambda: False))
    code, out, err = run_cli(["stream", str(model), "--window_seconds", "1"], capsys)
    assert json.loads(out.splitlines()[-1])["event"] == "end"  # the last window flushed, the counts printed
    assert (code, err) == (130, "hfspeech stream: interrupted\n"), err  # was: exit code 0, as if the audio ended
