"""One flag name per concept (session 32): switches that take true/false as train's do, an evaluate output folder
named like a file, hints that name only a flag meant, `--model` and `--output_dir` wherever the thing is a
positional, defaults in every help."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli_output


def one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def test_a_switch_given_false_is_off_and_its_word_is_no_audio_file(trained_cnn, tone_folder, capsys):
    """`predict RUN a.wav --trust_remote_code False` turned remote code ON and read `False` as an audio file."""
    clip = str(sorted((tone_folder / "low").glob("*.wav"))[-1])
    code, out, err = run_cli_output(["predict", str(trained_cnn), clip, "--trust_remote_code", "False", "--json",
                                     "true", "--progress", "no"], capsys)
    assert code == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == [clip]


@pytest.mark.parametrize("argv, dest, value", [
    (["stream", "m", "--trust_remote_code", "True"], "trust_remote_code", True),  # "unrecognized arguments: True"
    (["stream", "m", "--trust_remote_code=0"], "trust_remote_code", False),
    (["predict", "m", "a.wav", "--progress=FALSE"], "progress", False),
    (["predict", "m", "a.wav", "--prog", "no"], "progress", False),  # an abbreviation, as argparse takes it
    (["export", "m", "--skip_bad_files", "True"], "skip_bad_files", True),
])
def test_a_switch_takes_true_or_false_as_train_reads_it(argv, dest, value):
    from hfspeech.cli.export import export_parser
    from hfspeech.cli.predict import predict_parser
    from hfspeech.cli.stream import stream_parser

    parser = {"stream": stream_parser, "predict": predict_parser, "export": export_parser}[argv[0]]()
    assert getattr(parser.parse_args(argv[1:]), dest) is value


def test_push_reads_a_switch_given_a_value_through_the_real_command(trained_cnn, capsys):
    """`push RUN --dry_run 1`, through `hfspeech push` itself (push builds its parser inside the command): a dry run
    lists the files; a switch that took no value would leave `1` over ("unrecognized arguments: 1")."""
    code, out, err = run_cli_output(["push", str(trained_cnn), "--repo_id", "a/b", "--dry_run", "1"], capsys)
    assert code == 0 and out.startswith("would upload "), (code, out, err)


def test_a_true_false_word_that_is_also_a_file_here_is_refused_as_ambiguous(tmp_path, monkeypatch, capsys):
    """Review 4: in a Speech Commands root (`no/`, `yes/`), `--trust_remote_code no` read `no` as the folder and
    turned remote code ON; the word is refused with both spellings to choose from."""
    from hfspeech.cli.predict import predict_parser

    monkeypatch.chdir(tmp_path)
    (tmp_path / "no").mkdir()
    with pytest.raises(SystemExit):
        predict_parser().parse_args(["m", "--trust_remote_code", "no", "yes.wav"])
    assert "--trust_remote_code=no for the switch, or ./no for the file" in capsys.readouterr().err
    args = predict_parser().parse_args(["m", "--trust_remote_code=no", "./no"])
    assert args.files == ["./no"] and args.trust_remote_code is False


@pytest.mark.parametrize("word, on", [("f", False), ("n", False), ("t", True), ("y", True)])
def test_transformers_short_true_false_words_read_as_train_reads_them(word, on):
    """Review 4: `--trust_remote_code f` turned remote code ON in predict (train's string_to_bool reads it off)."""
    from hfspeech.cli.predict import predict_parser

    args = predict_parser().parse_args(["m", "--trust_remote_code", word, "a.wav"])
    assert args.trust_remote_code is on and args.files == ["a.wav"]


def test_a_command_without_files_reads_the_word_though_a_file_has_that_name(tmp_path, monkeypatch):
    from hfspeech.cli.stream import stream_parser

    monkeypatch.chdir(tmp_path)
    (tmp_path / "1").write_bytes(b"")
    assert stream_parser().parse_args(["m", "--windows", "1"]).windows is True


def test_a_switch_value_that_is_not_true_or_false_is_one_line(capsys):
    line = one_error_line(*run_cli_output(["predict", "m", "a.wav", "--json=maybe"], capsys)[::2])
    assert "--json" in line and "true or false" in line, line


@pytest.mark.parametrize("name", ["metrics.json", "rows.jsonl", "table.csv"])
def test_evaluate_refuses_an_output_folder_named_like_a_file(name, tmp_path, capsys):
    """`evaluate --output metrics.json` is argparse's prefix of --output_dir: it made a FOLDER metrics.json, exit 0."""
    out = tmp_path / name
    code, _, err = run_cli_output(["evaluate", "--model", str(tmp_path / "run"), "--data_dir", str(tmp_path),
                                   "--output", str(out)], capsys)
    line = one_error_line(code, err)
    assert "stdout" in line and f"> {out}" in line, line
    assert not out.exists()


@pytest.mark.parametrize("argv, said, not_said", [
    (["predict", "m", "a.wav", "--cache_dir", "x"], "HF_HUB_CACHE", "--batch_size"),
    (["evaluate", "m", "--cache_dir", "x"], "HF_DATASETS_CACHE", "--data_dir"),
    (["predict", "m", "a.wav", "--sampling_rate", "8000"], "unknown flag(s) ['--sampling_rate']", "--aggregate"),
    (["predict", "m", "a.wav", "--max_length_seconds", "1"], "give --window_seconds", "--hop_seconds"),
    (["train", "--device", "cpu"], "--use_cpu", "--use_mps_device"),
    (["train", "--batch_size", "2"], "--per_device_train_batch_size", "--auto_find_batch_size"),
    (["train", "--window_seconds", "1"], "--max_length_seconds", "did you mean"),
    (["train", "--clip_seconds", "1"], "--max_length_seconds", "did you mean"),
    (["train", "--teacher", "run"], "hfspeech distill --teacher", "did you mean"),
    (["train", "--repo_id", "a/b"], "--push_to_hub --hub_model_id", "did you mean"),
    (["push", "run", "--hub_model_id", "a/b"], "give --repo_id", "did you mean"),
    (["push", "run", "--repo_id", "a/b", "--token", "x"], "HF_TOKEN", "did you mean"),
    (["serve", "m", "--window_seconds", "1"], "serve cuts the window the model trained on", "did you mean"),
    (["evaluate", "m", "--top_k", "3"], "ranks no labels", "--trim_top_db"),
    (["predict", "m", "a.wav", "--top_j", "2"], "(did you mean ['--top_k']?)", "HF_"),  # a near one still named
    (["train", "--learnig_rate", "1"], "(did you mean ['--learning_rate']?)", "HF_"),
])
def test_a_flag_of_another_command_is_told_its_equivalent_and_no_misleading_name(argv, said, not_said, capsys):
    line = one_error_line(*run_cli_output(argv, capsys)[::2])
    assert said in line and not_said not in line, line


def test_train_model_says_which_of_the_two_model_flags_to_give(tmp_path, capsys):
    line = one_error_line(*run_cli_output(["train", "--model", "run", "--data_dir", str(tmp_path)], capsys)[::2])
    assert "--model_name_or_path (a saved model or Hub id)" in line and "--model_type" in line, line
    assert "ambiguous" not in line and "--model_revision" not in line, line


@pytest.mark.parametrize("argv", [
    ["serve", "--model", "{missing}"], ["export", "--model", "{missing}"],
    ["stage", "--model", "{missing}", "{tmp}/dest"], ["stage", "--model={missing}", "--output_dir", "{tmp}/dest"],
    ["push", "--model", "{missing}", "--repo_id", "a/b", "--dry_run"],
])
def test_model_and_output_dir_flags_are_read_as_the_positionals(argv, tmp_path, capsys):
    """serve/export/stage/push refused `--model` ("did you mean ['--help']"), stage `--output_dir`: now the model is
    read, and found missing."""
    missing = tmp_path / "missing"
    words = [word.format(missing=missing, tmp=tmp_path) for word in argv]
    line = one_error_line(*run_cli_output(words, capsys)[::2])
    assert f"{missing}: model folder not found" in line, line
    assert not (tmp_path / "dest").exists()


def test_tiny_model_and_demo_data_take_output_dir_as_demo_does(tmp_path, capsys):
    code, _, err = run_cli_output(["tiny-model", "--output_dir", str(tmp_path / "tiny"), "--labels", "a", "b"], capsys)
    assert code == 0 and (tmp_path / "tiny" / "config.json").is_file(), err
    code, _, err = run_cli_output(["demo-data", "--kind", "events", "--num_clips", "2", "--events", "beep", "click",
                                   "--output-dir", str(tmp_path / "events")], capsys)
    assert code == 0 and any((tmp_path / "events").rglob("*.wav")), err


def test_pretrained_takes_output_dir_after_the_name(tmp_path, capsys):
    """`--from_ctranslate2 SRC --output_dir D`: D is the OUTPUT_DIR (it was "unknown flag(s) ['--output_dir']")."""
    line = one_error_line(*run_cli_output(["pretrained", "--from_ctranslate2", str(tmp_path / "src"), "--output_dir",
                                           str(tmp_path / "out")], capsys)[::2])
    assert "--output_dir" not in line and str(tmp_path / "src") in line, line


@pytest.mark.parametrize("command, flag, default", [
    ("predict", "--top_k", "3"), ("stream", "--min_windows", "3"), ("serve", "--port", "8080"),
    ("serve", "--log_level", "info"), ("demo-data", "--seed", "0"),
])
def test_every_help_says_the_default(command, flag, default, capsys):
    code, out, _ = run_cli_output([command, "--help"], capsys)
    after = " ".join(out.split(f"  {flag} ", 1)[1].split("\n  --", 1)[0].split())
    assert code == 0 and f"(default: {default})" in after, after


def test_stream_takes_sampling_rate_as_train_names_it():
    from hfspeech.cli.stream import stream_parser

    assert stream_parser().parse_args(["m", "--sampling_rate", "8000"]).rate == 8000


@pytest.mark.parametrize("flag", ["--test_split_name", "--eval-split-name", "--eval_split", "--train_split_n"])
def test_evaluate_split_name_flags_are_told_split(flag, tmp_path, capsys):
    line = one_error_line(*run_cli_output(["evaluate", "--model", str(tmp_path), "--data_dir", str(tmp_path), flag,
                                           "foo"], capsys)[::2])
    assert "give --split NAME" in line, line


def test_a_flag_typed_without_its_underscores_is_still_named(capsys):
    """Review 4: the tighter hint rule lost `--modelname` -> `--model_name_or_path` (a right hint)."""
    line = one_error_line(*run_cli_output(["train", "--modelname", "x"], capsys)[::2])
    assert "did you mean ['--model_name_or_path']" in line, line
