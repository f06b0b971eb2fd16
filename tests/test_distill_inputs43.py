"""`hfspeech distill`'s teacher is an input of the run as --model_name_or_path is (session 43, CL).

Before: distill.py refused `--teacher RUN/checkpoint-4 --output_dir RUN --overwrite_output_dir` with a twin of
`run_folder.refuse_removing_an_input` (its own `checkpoint-\\d+`); now `run_training` gives `start_over` both paths.
A teacher of other labels was refused only once it was loaded: after every clip was decoded and after
run_inputs.json was written into the output folder; now from its config.json, before the decoding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY_CNN, run_cli_output, save_random_baseline, write_tone_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["high", "low", "noise"]  # the tone folder's


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("tones") / "data", clips_per_class=4, rates=(16000,))


def distill(teacher: Path, data: Path, output_dir: Path, capsys, *flags: str) -> tuple[int, str]:
    code, _, err = run_cli_output(["distill", "--teacher", str(teacher), "--data_dir", str(data), "--output_dir",
                                   str(output_dir), "--student_model_type", "cnn", "--config_overrides", TINY_CNN,
                                   "--max_length_seconds", "0.5", "--max_steps", "1", "--save_strategy", "no",
                                   "--eval_strategy", "no", "--dataloader_num_workers", "0", *flags], capsys)
    return code, err


def test_a_teacher_in_a_checkpoint_the_overwrite_removes_is_refused_as_a_starting_model_is(tones, tmp_path, capsys):
    run = tmp_path / "run"
    teacher = save_random_baseline(run / "checkpoint-4", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)
    (run / "trainer_state.json").write_text("{}")  # an hfspeech run's: its checkpoints are removed
    code, err = distill(teacher, tones, run, capsys, "--overwrite_output_dir")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: --output_dir {run}: --overwrite_output_dir would remove the earlier run's checkpoint-4, which "
        f"--teacher {teacher} is loaded from; copy it elsewhere first, or give another --output_dir")
    assert (teacher / "config.json").is_file() and (run / "trainer_state.json").is_file()


def test_a_teacher_of_other_labels_is_refused_before_decoding_and_writes_nothing(tones, tmp_path, capsys):
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["no", "yes"], 0.5, conv_channels=[4, 8], n_mels=16)
    student = tmp_path / "student"
    student.mkdir()
    code, err = distill(teacher, tones, student, capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: --teacher {teacher}: its labels ['no', 'yes'] are not the data's {LABELS}")
    assert not list(student.iterdir())  # it held run_inputs.json
    # A clip that cannot be decoded: the decoding would name it first; the labels are refused before it runs.
    broken = tmp_path / "broken"
    for label in LABELS:
        (broken / label).mkdir(parents=True)
        for clip in sorted((tones / label).iterdir())[:2]:
            (broken / label / clip.name).write_bytes(clip.read_bytes())
    (broken / "low" / "cut.wav").write_bytes(b"RIFF\x00\x00")
    code, err = distill(teacher, broken, tmp_path / "fresh", capsys)
    assert code == 2 and "its labels ['no', 'yes'] are not the data's" in err and "cut.wav" not in err
    assert not (tmp_path / "fresh").exists()
