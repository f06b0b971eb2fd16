"""Flag mistakes that still got misleading lines (session 33): a flag read as a positional given twice, or beside
that positional; `pretrained --output_dir X` without a NAME; hints sharing only a generic word (`dir`) or losing a
right one (`--outptu`); `average --output x.json` making a folder."""

from __future__ import annotations

import pytest

from conftest import run_cli_output


def one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


@pytest.mark.parametrize("argv, said", [
    (["predict", "--model", "a", "--model", "b", "x.wav"], "--model given twice (a, b)"),  # was "unknown flag(s)"
    (["stream", "--model=a", "--model", "b"], "--model given twice (a, b)"),
    (["tiny-model", "--output_dir", "a", "--output-dir=b"], "--output_dir given twice (a, b)"),
])
def test_a_flag_read_as_a_positional_given_twice_names_both_values(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(*run_cli_output(argv, capsys)[::2])
    assert said in line and "unknown flag" not in line, line


@pytest.mark.parametrize("argv, said", [
    (["stage", "RUN", "DEST", "--output_dir", "X"], "DEST given twice: DEST and --output_dir X"),  # "unrecognized: X"
    (["stage", "--output_dir", "X", "RUN", "DEST"], "DEST given twice: DEST and --output_dir X"),
    (["stage", "RUN", "--model", "R2", "DEST"], "RUN given twice: RUN and --model R2"),
    (["push", "A", "--model", "B", "--repo_id", "a/b", "--dry_run"], "RUN given twice: A and --model B"),
    (["stream", "A", "--model", "B"], "MODEL given twice: A and --model B"),
    (["serve", "A", "--model", "B"], "MODEL given twice: A and --model B"),
    (["export", "A", "--model", "B"], "MODEL given twice: A and --model B"),
    (["demo-data", "A", "--output_dir", "B"], "OUTPUT_DIR given twice: A and --output_dir B"),
    (["pretrained", "whisper-base", "A", "--output_dir", "B"], "OUTPUT_DIR given twice: A and --output_dir B"),
])
def test_a_positional_also_given_as_its_flag_is_named_given_twice(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(*run_cli_output(argv, capsys)[::2])
    assert said in line and "unrecognized" not in line, line
    assert list(tmp_path.iterdir()) == []


def test_predict_with_a_model_first_and_another_as_model_flag_is_refused(tmp_path, monkeypatch, capsys):
    """`predict RUN --model RUN2 a.wav` classified with RUN2, then failed on RUN as a folder without audio files."""
    monkeypatch.chdir(tmp_path)
    for run in ("run1", "run2"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "config.json").write_text("{}")
        (tmp_path / run / "model.safetensors").write_bytes(b"")
    line = one_error_line(*run_cli_output(["predict", "run1", "--model", "run2", "a.wav"], capsys)[::2])
    assert "MODEL given twice: run1 and --model run2" in line, line


@pytest.mark.parametrize("files", [["data"], ["--", "data"], ["data", "a.wav"]])
def test_a_folder_of_audio_with_a_config_of_its_own_is_a_file_not_a_second_model(tmp_path, monkeypatch, capsys,
                                                                                  files):
    """A folder holding config.json but no weights is no model; after `--` every word is a file (review: both were
    refused "MODEL given twice")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "config.json").write_text("{}")
    code, _, err = run_cli_output(["predict", "--model", "run1", *files], capsys)
    assert "given twice" not in err, err


def test_pretrained_output_dir_without_a_name_says_the_name_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(*run_cli_output(["pretrained", "--output_dir", "X"], capsys)[::2])
    assert "NAME missing before --output_dir X" in line and "whisper-tiny.en" in line, line
    assert "unknown pretrained checkpoint" not in line and not (tmp_path / "X").exists(), line


@pytest.mark.parametrize("argv, not_said", [
    (["train", "--calibration_dir", "x"], "--logging_dir"),  # they share only `dir`
    (["train", "--file_name", "x"], "--run_name"),
    (["predict", "m", "a.wav", "--label_name", "x"], "--path_column_name"),
])
def test_a_hint_needs_more_in_common_than_a_generic_word(argv, not_said, capsys):
    line = one_error_line(*run_cli_output(argv, capsys)[::2])
    assert f"unknown flag(s) ['{argv[-2]}']" in line and not_said not in line and "did you mean" not in line, line


@pytest.mark.parametrize("argv, said", [
    (["train", "--outptu", "x"], "(did you mean ['--output_dir']?)"),  # two letters of `output` swapped
    (["evaluate", "m", "--eval_dir", "x"], "give --data_dir"),  # the generic-word rule's loss, told instead
    (["export", "m", "--data_dir", "x"], "give --eval_dir"),
    (["export", "m", "--calib_dir", "x"], "give --calibration_dir"),  # right hints the generic-word rule lost
    (["train", "--model_dir", "x"], "give --model_name_or_path"),  # (and an absurd one, --noise_dir, before)
])
def test_a_right_hint_is_still_given(argv, said, capsys):
    line = one_error_line(*run_cli_output(argv, capsys)[::2])
    assert said in line, line


@pytest.mark.parametrize("flag", ["--output", "--output_dir"])
def test_average_refuses_an_output_folder_named_like_a_file(flag, tmp_path, capsys):
    """`average RUN1 RUN2 --output x.json` (argparse's prefix of --output_dir) made a FOLDER x.json, exit 0."""
    out = tmp_path / "x.json"
    line = one_error_line(*run_cli_output(["average", str(tmp_path / "a"), str(tmp_path / "b"), flag, str(out)],
                                          capsys)[::2])
    assert f"--output_dir {out}: names a folder for the averaged model" in line, line
    assert not out.exists()
