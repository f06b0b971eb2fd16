"""Session 42 (DY): `--config_overrides` values a flag sets, cross-validate's order, the generators from Python.

1. `--use_weighted_layer_sum True --config_overrides '{"use_weighted_layer_sum": false}'` trained with the flag's
   value without a word; so did a trimmed checkpoint's `trim_silence_top_db` (the run's own replaced it) and
   Whisper's `max_source_positions` (recut by --whisper_window_seconds); `finetuning_task` was a TypeError traceback.
2. `cross-validate` with a bad `--config_overrides` wrote the fold manifests into OUTPUT_DIR before refusing.
3. The Python generators (`generate_event_dataset`, `generate_noise_files`, ...) wrote `README.md`, `labels.csv` and
   clips into any folder, the user's too: only `hfspeech demo-data` checked it.
4. A read-only folder: a finished one reused from Python still wrote (a PermissionError or EROFS traceback), and a
   new one was a traceback rather than one line naming the folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli_output, write_csv_manifest, write_tone_folder
from hfspeech.errors import HfspeechError, UsageError
from hfspeech.synthetic.events import generate_event_dataset
from hfspeech.synthetic.signals import generate_noise_files


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    return save_tiny_ssl_model(str(tmp_path_factory.mktemp("w2v") / "model"), "wav2vec2", labels=["high", "low"])


@pytest.mark.parametrize("flags, override, expected", [
    (["--use_weighted_layer_sum", "True"], '{"use_weighted_layer_sum": false}',
     "'use_weighted_layer_sum' is set by --use_weighted_layer_sum: give it there"),
    ([], '{"use_weighted_layer_sum": true}', "'use_weighted_layer_sum' is set by --use_weighted_layer_sum"),
    (["--trim_silence", "True"], '{"trim_silence_top_db": 10}', "'trim_silence_top_db' is set by --trim_silence"),
    ([], '{"max_source_positions": 100}', "'max_source_positions' is Whisper's window, set by --whisper_window"),
    ([], '{"finetuning_task": "x"}', "'finetuning_task' is set by hfspeech"),
    ([], '{"model_type": "hubert"}', "'model_type' is the kind of model (--model_type, or the checkpoint's)"),
])
def test_a_config_value_a_flag_sets_is_refused_in_one_line(flags, override, expected, tiny_wav2vec2, tmp_path,
                                                            capsys):
    data = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(16000,))
    code, _, err = run_cli_output(["train", "--data_dir", str(data), "--output_dir", str(tmp_path / "run"),
                                   "--model_name_or_path", str(tiny_wav2vec2), *flags, "--config_overrides", override,
                                   "--num_train_epochs", "1"], capsys)
    assert code == 2 and f"error: --config_overrides: {expected}" in err, err
    assert "Traceback" not in err and "unknown key" not in err


@pytest.mark.parametrize("existing", [False, True])
def test_cross_validate_refuses_bad_overrides_before_writing_anything(existing, tmp_path, capsys):
    data = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(16000,))
    rows = [{"path": str(path), "label": path.parent.name, "speaker": f"s{i % 2}"}
            for i, path in enumerate(sorted(data.rglob("*.wav")))]
    manifest = write_csv_manifest(tmp_path / "all.csv", rows)
    out = tmp_path / "cv"
    if existing:
        out.mkdir()
    code, _, err = run_cli_output(["cross-validate", "--train_file", manifest, "--group_column", "speaker",
                                   "--output_dir", str(out), "--config_overrides", '{"n_mel": 40}'], capsys)
    assert code == 2 and "--config_overrides: unknown key(s) ['n_mel']" in err, err
    assert (sorted(os.listdir(out)) == [] if existing else not out.exists())


def users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    return folder


def test_the_event_generator_refuses_a_users_folder_from_python(tmp_path):
    folder = users_folder(tmp_path)
    with pytest.raises(UsageError, match=r": holds other files \(README.md\), not events data that hfspeech "
                                         "generated; give a new or empty folder$"):
        generate_event_dataset(folder, num_clips=2)
    assert sorted(os.listdir(folder)) == ["README.md"] and (folder / "README.md").read_text() == "my notes"


def test_the_keyword_generator_refuses_a_users_folder_before_looking_for_espeak(tmp_path, monkeypatch):
    from hfspeech.synthetic.spoken import generate_keyword_dataset

    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no espeak-ng: the folder is refused first all the same
    folder = users_folder(tmp_path)
    with pytest.raises(UsageError, match="holds other files .README.md., not keywords data that hfspeech generated"):
        generate_keyword_dataset(folder, keywords=["yes"], clips_per_keyword=1, progress=False)
    assert sorted(os.listdir(folder)) == ["README.md"]


def test_a_folder_another_kind_generated_is_refused_from_python(tmp_path, monkeypatch):
    from hfspeech.synthetic.spoken import generate_language_dataset

    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    events = generate_event_dataset(tmp_path / "events", num_clips=2)
    with pytest.raises(UsageError, match="not languages data that hfspeech generated"):
        generate_language_dataset(events, languages=["en"], clips_per_language=1, progress=False)
    assert generate_event_dataset(events, num_clips=3) == events  # its own kind: written again


def test_the_noise_and_digit_generators_refuse_a_users_folder(tmp_path):
    from hfspeech.synthetic.digits import generate_spoken_digits

    folder = tmp_path / "noise"
    folder.mkdir()
    (folder / "cafe.wav").write_bytes(b"mine")
    with pytest.raises(UsageError, match=r"holds other files \(cafe.wav\), not noise files that hfspeech generated"):
        generate_noise_files(folder, n=2, seconds=0.1)
    assert sorted(os.listdir(folder)) == ["cafe.wav"]
    with pytest.raises(UsageError, match=r"holds other files \(README.md\), not spoken digits that hfspeech"):
        generate_spoken_digits(users_folder(tmp_path), clips_per_digit=1)
    assert sorted(os.listdir(tmp_path / "mine")) == ["README.md"]


@pytest.fixture
def read_only():
    """`read_only(folder)`: `folder` made unwritable for real: its mode for a user other than root; for root, whom
    modes do not stop, a read-only bind mount of it onto itself (skipped where this process may not mount)."""
    mounted, chmodded = [], []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            chmodded.append(folder)
            return folder
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
        if done.returncode != 0 or os.access(folder, os.W_OK):
            pytest.skip(f"cannot make a read-only folder as root here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
    for folder in chmodded:
        folder.chmod(0o755)


def test_a_finished_generated_folder_is_reused_read_only(tmp_path, read_only):
    events = generate_event_dataset(tmp_path / "events", num_clips=2)
    noise = tmp_path / "noise"
    written = generate_noise_files(noise, n=2, seconds=0.1)
    read_only(events)
    read_only(noise)
    assert generate_event_dataset(events, num_clips=2) == events
    assert generate_noise_files(noise, n=2, seconds=0.1) == written


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_finished_spoken_digits_are_reused_read_only(tmp_path, read_only):
    from hfspeech.synthetic.digits import generate_spoken_digits

    manifest = generate_spoken_digits(tmp_path / "digits", clips_per_digit=1, clip_seconds=0.5)
    read_only(tmp_path / "digits")
    assert generate_spoken_digits(tmp_path / "digits", clips_per_digit=1, clip_seconds=0.5) == manifest


def test_writing_into_a_read_only_folder_is_one_line_naming_it(tmp_path, read_only):
    empty = tmp_path / "empty"
    empty.mkdir()
    read_only(empty)
    for call in (lambda: generate_event_dataset(empty, num_clips=2),
                 lambda: generate_event_dataset(empty / "new", num_clips=2),
                 lambda: generate_noise_files(empty, n=1, seconds=0.1)):
        with pytest.raises(HfspeechError, match=f"^{re.escape(str(empty))}(/new)?: cannot write") as refused:
            call()
        assert "\n" not in str(refused.value)
    assert os.listdir(empty) == []


def test_the_cli_keeps_its_flag_in_the_refusal(tmp_path, capsys):
    folder = users_folder(tmp_path)
    code, _, err = run_cli_output(["demo-data", str(tmp_path / "new"), "--kind", "events", "--num_clips", "2",
                                   "--noise_files", str(folder)], capsys)
    assert code == 2 and f"--noise_files {folder}: holds other files (README.md), not noise files" in err, err
    assert not (tmp_path / "new").exists()
