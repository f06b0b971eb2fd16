"""distill's `--teacher` missing on one machine of a launched run: checked as the command line was read, machine 1 said
its line and left before the processes joined, and machine 0 waited in gloo's set-up until it died (DistNetworkError,
minutes later). In a launched run each machine's copy is checked once the processes have joined, through `agreed`
(`live_teacher.check_teacher_labels`, in the data step): both machines say the same line. A run of one process still
checks it as the command line is read."""

from __future__ import annotations

import pytest

from tests.conftest import save_random_baseline
from tests.test_multimachine41 import exited_on_the_line, launch_two_machines

LABELS = ["high", "low", "noise"]  # the tone folder's


def test_a_teacher_missing_on_one_machine_stops_both_with_its_line(tone_folder, tmp_path):
    save_random_baseline(tmp_path / "m0" / "teacher", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)
    results = launch_two_machines(tmp_path, None, ["--output_dir", "runs/x", "--teacher_cache_dir", "cache"], program=[
        "-m", "hfspeech.cli", "distill", "--teacher", "teacher", "--data_dir", str(tone_folder)])
    lines = [[line for line in output.splitlines() if line.startswith("error: ")] for _, output in results]
    assert lines[0] and lines[0] == lines[1], [output[-3000:] for _, output in results]
    assert lines[0] == ["error: process 1 (machine 1): --teacher teacher: model folder not found"], lines
    for status, output in results:
        assert status != 0 and exited_on_the_line(output), output[-3000:]
        assert "Connection closed" not in output and "DistNetworkError" not in output, output[-3000:]


def test_one_process_still_checks_the_teacher_as_the_command_line_is_read(monkeypatch, tmp_path):
    from hfspeech.errors import UsageError
    from hfspeech.training.distill import parse_distill_args

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UsageError, match=r"^--teacher .*nothing: model folder not found$"):
        parse_distill_args(["--teacher", str(tmp_path / "nothing"), "--data_dir", str(tmp_path), "--output_dir",
                            str(tmp_path / "run")])


def test_the_agreed_data_step_names_a_missing_teacher_in_the_flag_s_words(tmp_path):
    """What each machine of a launched run checks once the processes have joined (`load_data`, agreed): its own copy
    of the folder, named as the flags' check names it (it was a FileNotFoundError from reading its config.json)."""
    from hfspeech.errors import UsageError
    from hfspeech.training.live_teacher import check_teacher_labels

    with pytest.raises(UsageError, match=r"^--teacher .*nothing: model folder not found$"):
        check_teacher_labels(str(tmp_path / "nothing"), LABELS)


def test_a_teacher_cache_dir_that_is_a_file_on_one_machine_stops_both_with_its_line(tone_folder, tmp_path):
    """Review R2: `--teacher_cache_dir` was checked as the flags were read, as `--teacher` was: machine 0 left with
    "not a folder", machine 1 died of DistNetworkError."""
    for machine in (0, 1):
        save_random_baseline(tmp_path / f"m{machine}" / "teacher", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)
    (tmp_path / "m0" / "cache").write_text("a file where the cache folder goes")
    results = launch_two_machines(tmp_path, None, ["--output_dir", "runs/x", "--teacher_cache_dir", "cache"], program=[
        "-m", "hfspeech.cli", "distill", "--teacher", "teacher", "--data_dir", str(tone_folder)])
    lines = [[line for line in output.splitlines() if line.startswith("error: ")] for _, output in results]
    assert lines[0] == lines[1] == ["error: process 0 (machine 0): --teacher_cache_dir cache: not a folder"], lines
    for status, output in results:
        assert status != 0 and "DistNetworkError" not in output, output[-3000:]


def test_the_data_step_refuses_a_teacher_of_another_kind_before_decoding(tmp_path):
    """Review R2: in a launched run the teacher's kind was checked after the clips were decoded and the model built;
    the agreed data step checks it from the teacher's config.json before decoding."""
    from hfspeech.errors import UsageError
    from hfspeech.training.live_teacher import check_teacher_labels

    teacher = save_random_baseline(tmp_path / "teacher", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)
    check_teacher_labels(str(teacher), LABELS, multi_label=False)
    with pytest.raises(UsageError, match="a single-label .softmax. classifier, but the student is multi-label"):
        check_teacher_labels(str(teacher), LABELS, multi_label=True)


def test_one_process_names_the_teacher_s_kind_before_a_frozen_student(monkeypatch, tmp_path):
    """The order of the refusals as it was before this session's launched-run change (review R2)."""
    from hfspeech.errors import UsageError
    from hfspeech.training.distill import parse_distill_args

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)
    with pytest.raises(UsageError, match="^--teacher .*single-label"):
        parse_distill_args(["--teacher", str(teacher), "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "r"),
                            "--problem_type", "multi_label_classification", "--freeze_base_model", "True",
                            "--cache_frozen_features", "True"])


def test_a_process_names_its_command_after_hfspeech_s_own_flags(monkeypatch):
    from hfspeech.training.distributed import command_of_this_process

    monkeypatch.setattr("sys.argv", ["hfspeech", "--debug", "distill", "--teacher", "t"])
    assert command_of_this_process() == "distill"
