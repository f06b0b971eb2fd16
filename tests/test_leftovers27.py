"""What the first wave left: row-order-free cross-validation and sample limits, no bars in distillation's or
evaluation's logs, evaluate's flag errors worded as the other commands', one zero-length wording."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset

from conftest import run_cli_output, save_random_baseline, write_tone_folder, write_csv_manifest
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.training.cross_validation import write_fold_manifests


def test_cross_validation_folds_do_not_follow_the_manifests_row_order(tmp_path):
    rows = [{"path": str(tmp_path / f"clip{i:03d}.wav"), "label": "ab"[i % 2], "speaker": f"s{i % 3}"}
            for i in range(30)]
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)

    def fold_files(name: str, listed: list[dict]) -> dict:
        folds = write_fold_manifests(write_csv_manifest(tmp_path / f"{name}.csv", listed), "speaker",
                                     str(tmp_path / name), 0.2, seed=0, label_column="label")
        return {group: {part: Path(path).read_text() for part, path in files.items()}
                for group, files in folds.items()}

    assert fold_files("shuffled", shuffled) == fold_files("sorted", rows)


def test_max_train_samples_draws_the_same_clips_from_given_splits_in_any_row_order(tmp_path):
    folder = write_tone_folder(tmp_path / "tones", clips_per_class=8, rates=(16000,))
    rows = sorted(({"path": str(path), "label": path.parent.name} for path in folder.rglob("*.wav")),
                  key=lambda row: row["path"])
    given = {"validation_file": write_csv_manifest(tmp_path / "validation.csv", rows[0::4]),
             "test_file": write_csv_manifest(tmp_path / "test.csv", rows[1::4])}
    train = rows[2::4] + rows[3::4]
    shuffled = list(train)
    random.Random(2).shuffle(shuffled)

    def train_clips(name: str, listed: list[dict]) -> list[str]:
        spec = DataSpec(source={"train_file": write_csv_manifest(tmp_path / name, listed), **given},
                        max_train_samples=5)
        return sorted(clip["path"] for clip in column_values(load_labelled_splits(spec, seed=0)["train"], "audio"))

    in_order = sorted(train, key=lambda row: row["path"])
    assert train_clips("shuffled.csv", shuffled) == train_clips("sorted.csv", in_order)


def test_progress_wanted_is_false_without_a_stderr(monkeypatch):
    """pythonw and some service managers run with `sys.stderr = None`: `progress_wanted` called its isatty and
    stopped on an AttributeError; the one rule (`data.progress_bars.stderr_is_terminal`) says no bar."""
    from hfspeech.cli.flags import progress_wanted

    monkeypatch.setattr(sys, "stderr", None)
    assert progress_wanted(None) is False
    assert progress_wanted(True) is True


def test_the_teacher_logits_bar_follows_the_run(tmp_path, capsys):
    from hfspeech.training.teacher_cache import teacher_logits

    teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    clips = Dataset.from_dict({"input_values": [np.zeros(1600, np.float32)] * 3})
    capsys.readouterr()
    teacher_logits(str(teacher), clips, 16000, ["a", "b"], cache_dir=str(tmp_path / "c1"), batch_size=1)
    assert "teacher logits" not in capsys.readouterr().err  # stderr is not a terminal here: no bar in the log
    teacher_logits(str(teacher), clips, 16000, ["a", "b"], cache_dir=str(tmp_path / "c2"), batch_size=1,
                   progress=True)  # `--disable_tqdm False`: the bar, asked for
    assert "teacher logits" in capsys.readouterr().err


def test_evaluate_draws_no_bars_into_a_log(tmp_path, capsys):
    folder = write_tone_folder(tmp_path / "tones", clips_per_class=2, rates=(16000,))
    model = save_random_baseline(tmp_path / "model", "cnn", ["high", "low", "noise"], 0.02, conv_channels=[4],
                                 n_mels=16)
    code, out, err = run_cli_output(["evaluate", str(model), "--data_dir", str(folder), "--output_dir",
                                     str(tmp_path / "report")], capsys)
    assert code == 0 and '"accuracy"' in out.replace("test_accuracy", "accuracy"), err
    assert "\r" not in err and "examples/s" not in err and "it/s" not in err, err
    assert not datasets.are_progress_bars_disabled()  # as they were after the command


@pytest.mark.parametrize("flags, message", [
    (["m", "--batch_size", "x"], "error: argument --batch_size/--batch-size: invalid int value: 'x'"),
    (["m", "--batch_size", "0"], "error: --batch_size must be at least 1, got 0"),
    (["--bach_size", "2"], "error: unknown flag(s) ['--bach_size'] (did you mean ['--batch_size']?); "),
])
def test_evaluate_flag_mistakes_read_as_the_other_commands(flags, message, capsys):
    code, out, err = run_cli_output(["evaluate", *flags], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith(message), err


def test_an_empty_clip_is_worded_as_an_empty_file(tmp_path):
    from hfspeech.data.audio import AudioFileError, decode_audio
    from hfspeech.features.feature_extraction import WaveformFeatureExtractor

    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFileError) as read:
        decode_audio(str(tmp_path / "empty.wav"), 16000)
    with pytest.raises(ValueError) as extracted:
        WaveformFeatureExtractor()([np.ones(10), np.array([])], sampling_rate=16000, padding=True)
    assert str(extracted.value) == f"input 1: {read.value.problem}"
