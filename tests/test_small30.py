"""Small findings of two user audits (session 30): a summary line over two lines, a JSON number as a manifest path,
`~` after `=` in a flag, transformers' "TRAIN this model" note at the start of training, and a group leak warned
in every cross-validation fold without saying what to do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli_output, save_random_baseline


def write_clip(path: Path, seed: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.random.default_rng(seed).standard_normal(8000)).astype(np.float32), 16000)
    return str(path)


def test_predict_names_an_output_holding_a_line_break_on_one_line_in_its_summary(tmp_path, capsys, monkeypatch):
    model = save_random_baseline(tmp_path / "model", "cnn", ["no", "yes"], 0.02)
    clip = write_clip(tmp_path / "a.wav")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli_output(["predict", str(model), clip, "--output", "a\nb.csv"], capsys)
    assert code == 0 and (tmp_path / "a\nb.csv").is_file(), err
    summary = [line for line in err.splitlines() if "written to" in line]
    assert summary == ["1 files written to 'a\\nb.csv' (0 already there, 0 failed)"], err


def test_a_json_number_in_the_path_column_is_the_file_its_text_names(tmp_path, monkeypatch):
    from hfspeech.data.manifests import manifest_files

    (tmp_path / "12345").write_bytes(b"RIFF")  # (only its name matters here)
    (tmp_path / "rows.jsonl").write_text('{"path": 12345}\n{"path": "12345"}\n')
    monkeypatch.chdir(tmp_path)
    assert manifest_files("rows.jsonl") == ["12345", "12345"]  # as `resolve_listed_path` (train) reads it


@pytest.mark.parametrize("cell", ["true", "null", "[1]"])
def test_a_path_cell_that_names_no_file_is_still_refused_with_its_row(tmp_path, cell):
    from hfspeech.data.manifests import ManifestError, manifest_files

    (tmp_path / "rows.jsonl").write_text(f'{{"path": {cell}}}\n')
    with pytest.raises(ManifestError, match="row 1 has no 'path'"):
        manifest_files(str(tmp_path / "rows.jsonl"))


def test_a_tilde_after_equals_is_the_home_folder_as_the_shell_makes_it_after_a_space(tmp_path, monkeypatch):
    from hfspeech.cli.predict import predict_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    args = predict_parser().parse_args(["--model=~/run", "a.wav", "--output=~/p.csv", "--timeline=~/t",
                                        "--path_col=~/x", "--", "--output=~/b.wav"])
    assert (args.model, args.output, args.timeline) == (f"{tmp_path}/run", f"{tmp_path}/p.csv", f"{tmp_path}/t")
    assert args.path_column == "~/x"  # a column's name, not a path: kept (R5: --api_key=~x became a path)
    assert args.files == ["a.wav", "--output=~/b.wav"]  # after `--`, a file name as written


def test_a_tilde_after_equals_is_expanded_for_every_cli_parser(tmp_path, monkeypatch):
    from hfspeech.cli.flags import CliParser

    monkeypatch.setenv("HOME", str(tmp_path))
    parser = CliParser(prog="hfspeech x")
    parser.add_argument("--output_dir")
    parser.add_argument("--label")
    assert parser.parse_args(["--output_dir=~/runs/x"]).output_dir == f"{tmp_path}/runs/x"
    assert parser.parse_args(["--out=~/runs/x"]).output_dir == f"{tmp_path}/runs/x"  # an abbreviation argparse takes
    assert parser.parse_args(["--label=~"]).label == "~"  # a value, not a path
    assert parser.parse_args(["--output_dir", "~/runs/x"]).output_dir == "~/runs/x"  # quoted past the shell: kept


def test_a_fold_validation_sharing_training_groups_says_why_and_a_missing_class_is_warned(tmp_path, caplog):
    """`cross-validate` with 2 speakers: each fold's validation clips come from its one training speaker, and a
    3-clip validation split can lack a class; both are warned, the leak with what it costs and what to do."""
    from hfspeech.data.labelled import DataSpec, load_labelled_splits
    from hfspeech.data.prepare import DataReport

    def manifest(name: str, rows: list[tuple]) -> str:
        lines = ["path,label,speaker"] + [f"{write_clip(tmp_path / f'{label}{i}.wav', i)},{label},{speaker}"
                                          for i, label, speaker in rows]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return str(tmp_path / name)

    train = manifest("train.csv", [(0, "a", "ann"), (1, "b", "ann"), (2, "c", "ann")])
    validation = manifest("validation.csv", [(3, "a", "ann"), (4, "a", "ann"), (5, "b", "ann")])
    test = manifest("test.csv", [(6, "a", "bob"), (7, "b", "bob"), (8, "c", "bob")])
    report = DataReport()
    load_labelled_splits(DataSpec(source=dict(train_file=train, validation_file=validation, test_file=test),
                                  group_column="speaker"), seed=0, report=report)
    leak = [w for w in report.warnings if w.startswith("groups leak across the train/validation splits")]
    assert len(leak) == 1 and "give a --validation_file of other groups" in leak[0], report.warnings
    assert "cross-validate draws validation from the training groups by design" in leak[0]
    assert [w for w in report.warnings if w.startswith("the validation split has no clip of 1 of 3 classes (c)")]
    assert json.dumps(report.warnings)  # recorded for data_report.json


def test_evaluate_expands_a_tilde_after_equals_too(monkeypatch, tmp_path):
    """`hfspeech evaluate --output_dir=~/e` kept `~/e`, a folder named `~` in the current one (N's report)."""
    from hfspeech.cli.training import parse_evaluate_args

    monkeypatch.setenv("HOME", str(tmp_path))
    eval_args, _ = parse_evaluate_args(["--model=~/run", "--data_dir", str(tmp_path), "--output_dir=~/e"])
    assert (eval_args.model, eval_args.output_dir) == (str(tmp_path / "run"), str(tmp_path / "e"))


def test_train_expands_a_tilde_after_equals_in_its_path_flags_only(tmp_path, monkeypatch):
    """`hfspeech train --data_dir=~/d` kept `~/d` (transformers expands only output_dir and logging_dir) (R5)."""
    from hfspeech.training.command_line import parse_args

    monkeypatch.setenv("HOME", str(tmp_path))
    _, data_args, training_args = parse_args(["--data_dir=~/d", "--output_dir=~/o", "--label_separator=~"])
    assert (data_args.data_dir, training_args.output_dir) == (f"{tmp_path}/d", f"{tmp_path}/o")
    assert data_args.label_separator == "~"
