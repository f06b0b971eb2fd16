"""A training command run from Python (`hfspeech.cli.main(["train", ...])`, a notebook) leaves the process as the user
had it: the root logger (its `basicConfig` handler had printed every library's INFO lines, and datasets' warnings
twice, for the rest of the process), transformers' verbosity (a `set_verbosity_error()` was turned back to warning),
and accelerate's variables and shared state (after a `--bf16` run the user's own `Accelerator()` was bf16). The
command's own log lines still show while it runs. `hfspeech.export` imports its ONNX stack only when it is used."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import transformers

from hfspeech.cli import main
from tests.conftest import TINY_CNN

ROOT = Path(__file__).resolve().parents[1]


def tiny_train(tone_folder: Path, output_dir: Path, *more: str) -> list[str]:
    return ["train", "--data_dir", str(tone_folder), "--output_dir", str(output_dir), "--model_type", "cnn",
            "--config_overrides", TINY_CNN, "--max_steps", "1", "--max_length_seconds", "0.5", *more]


def process_state() -> dict:
    from hfspeech.training.accelerate_environment import accelerate_variables

    root = logging.getLogger()
    return {"root handlers": list(root.handlers), "root level": root.level,
            "hfspeech level": logging.getLogger("hfspeech").level,
            "transformers verbosity": transformers.utils.logging.get_verbosity(),
            "ACCELERATE_*": accelerate_variables()}


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def quiet_transformers(monkeypatch):
    """A notebook's transformers quieted with `set_verbosity_error()`; no ACCELERATE_* variable, no Accelerator made."""
    from accelerate.state import AcceleratorState

    verbosity = transformers.utils.logging.get_verbosity()
    for name in [name for name in os.environ if name.startswith("ACCELERATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    AcceleratorState._reset_state()
    transformers.utils.logging.set_verbosity_error()
    yield
    transformers.utils.logging.set_verbosity(verbosity)


@contextlib.contextmanager
def users_process() -> Iterator[dict]:
    """The process as a notebook has it (with `quiet_transformers`): no root handler; pytest's own, which it adds
    to the root logger for the test's body, are taken off until the block ends. Yields `process_state()`."""
    root = logging.getLogger()
    pytest_handlers = list(root.handlers)
    for handler in pytest_handlers:
        root.removeHandler(handler)
    try:
        yield process_state()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in pytest_handlers:
            root.addHandler(handler)


def test_a_bf16_train_leaves_the_users_logging_verbosity_and_accelerator(quiet_transformers, tone_folder, tmp_path):
    import accelerate

    seen = Records()
    logging.getLogger("hfspeech.train").addHandler(seen)  # propagates as usual: does not stand in for root's
    try:
        with users_process() as before:
            assert main(tiny_train(tone_folder, tmp_path / "run", "--bf16", "--use_cpu")) == 0
            after = process_state()
    finally:
        logging.getLogger("hfspeech.train").removeHandler(seen)
    assert [r for r in seen.records if r.levelno == logging.INFO and r.getMessage().startswith("done:")]  # during
    assert after == before
    assert accelerate.Accelerator(cpu=True).mixed_precision == "no"


def test_a_train_refused_after_its_log_set_up_leaves_the_root_logger_too(quiet_transformers, tone_folder, tmp_path):
    """`--config_overrides` is checked in `setup_training`, after `basicConfig`: one line, exit code 2."""
    flags = tiny_train(tone_folder, tmp_path / "run")
    flags[flags.index(TINY_CNN)] = '{"conv_chanels":[4,8]}'
    with users_process() as before:
        assert main(flags) == 2
        assert process_state() == before


def test_the_python_entry_point_puts_back_what_its_parse_wrote(quiet_transformers, tone_folder, tmp_path):
    """`hfspeech.training.run.main(argv)` (what `recipes/finetune.py` runs) parses and trains as one command."""
    from hfspeech.training.run import main as recipe_main

    with users_process() as before:
        recipe_main(tiny_train(tone_folder, tmp_path / "run", "--bf16", "--use_cpu")[1:])
        assert process_state() == before


def test_nested_commands_keep_the_log_set_up_until_the_outermost_ends(quiet_transformers):
    """cross-validate's folds each run `run_training` inside the command's scope: the first fold's log set-up holds
    for the next folds' lines and the summary, as on the command line."""
    from hfspeech.training.command_line import process_state_kept

    root = logging.getLogger()
    with users_process() as before:
        with process_state_kept():
            with process_state_kept():
                logging.basicConfig(level=logging.INFO)
                transformers.utils.logging.set_verbosity_warning()
            assert len(root.handlers) == 1 and root.level == logging.INFO
            assert transformers.utils.logging.get_verbosity() == logging.WARNING
        assert process_state() == before


def test_the_export_package_imports_no_onnx_stack_until_an_export_is_used():
    """`predict` reads `hfspeech.export.staging`; importing it imported optimum and onnxruntime (8 s), which put
    `site-packages/onnxruntime/transformers` on sys.path, ahead of a notebook's own `metrics` module."""
    code = ("import sys; import hfspeech.export.staging; from hfspeech.export import ExportError; "
            "print(sorted(name for name in ('onnxruntime', 'optimum') if name in sys.modules), "
            "[path for path in sys.path if 'onnxruntime' in path])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "[]"]


def test_cross_validations_python_entry_point_puts_back_what_its_parse_wrote(quiet_transformers, tmp_path):
    """`training.cross_validation.main` (and `distill.main`, wrapped alike) parse and train as one command: each fold
    was the outermost scope, so the parse's ACCELERATE_* variables stayed and the summary lost its log set-up."""
    from hfspeech.training.cross_validation import main as cross_validation_main
    from tests.test_groups import write_manifests

    files = write_manifests(tmp_path, {"all": ["ann", "ann", "bob", "bob"]})
    with users_process() as before:
        cross_validation_main(["--train_file", str(files["all"]), "--group_column", "speaker", "--model_type", "cnn",
                               "--config_overrides", TINY_CNN, "--output_dir", str(tmp_path / "cv"), "--max_steps",
                               "1", "--validation_split_percentage", "0", "--disable_tqdm", "True", "--bf16",
                               "--use_cpu"])
        assert process_state() == before
