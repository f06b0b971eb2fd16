"""A Hub token given any way a user can -- `--hub_token`, HF_TOKEN, with `--push_to_hub` -- lands in no file.

Trainer pickles its arguments into `training_args.bin` in the run folder and in every checkpoint; hfspeech
takes every token field off them first. The push itself cannot reach the Hub here (offline mode): it fails
with one line that says the run is saved, and the token is in none of the files, logs or staged repos.
"""

from __future__ import annotations

import contextlib
import io
import logging

import pytest
from conftest import TINY_CNN, write_tone_folder

from hfspeech.cli import main

FLAG_TOKEN = "hf_FakeFlagToken0123456789abcdefghijklmn"
ENV_TOKEN = "hf_FakeEnvToken0123456789abcdefghijklmno"


def files_holding(folder, secrets) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]


@pytest.fixture(scope="module")
def pushed_run(tmp_path_factory):
    """A training run given both tokens and --push_to_hub, offline: (output folder, exit code, stderr, log)."""
    root = tmp_path_factory.mktemp("secrets")
    data = write_tone_folder(root / "data", clips_per_class=6, rates=(16000,))
    output_dir = root / "run"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(handler.format(record))
    logging.getLogger().addHandler(handler)

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            code = main(["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
                         "--config_overrides", TINY_CNN, "--num_train_epochs", "2", "--max_length_seconds", "0.5",
                         "--per_device_train_batch_size", "8", "--hub_token", FLAG_TOKEN, "--push_to_hub",
                         "--hub_model_id", "someone/tones"])
    finally:
        logging.getLogger().removeHandler(handler)
        monkeypatch.undo()
    return output_dir, code, stderr.getvalue(), "\n".join(records)


def test_the_failed_push_is_one_line_and_the_run_is_saved(pushed_run):
    output_dir, code, stderr, _ = pushed_run
    assert code == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {output_dir}: trained and saved, but the push to someone/tones failed")
    assert "Traceback" not in stderr
    assert (output_dir / "model.safetensors").is_file() and list(output_dir.glob("checkpoint-*/training_args.bin"))


def test_no_token_in_any_file_log_or_message(pushed_run):
    output_dir, _, stderr, log = pushed_run
    assert (output_dir / "training_args.bin").is_file()
    assert files_holding(output_dir, [FLAG_TOKEN, ENV_TOKEN]) == []
    assert FLAG_TOKEN not in stderr + log and ENV_TOKEN not in stderr + log


def test_no_token_in_a_staged_repo_or_a_dry_run(pushed_run, tmp_path, monkeypatch, capsys):
    output_dir = pushed_run[0]
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    assert main(["stage", str(output_dir), str(tmp_path / "staged")]) == 0
    assert main(["push", str(output_dir), "--repo-id", "someone/tones", "--dry-run"]) == 0
    assert files_holding(tmp_path / "staged", [FLAG_TOKEN, ENV_TOKEN]) == []
    out = capsys.readouterr()
    assert FLAG_TOKEN not in out.out + out.err and ENV_TOKEN not in out.out + out.err
