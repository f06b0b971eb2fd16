"""The one rule for output folders (hfspeech/output_folders.py): new, empty, or an earlier output of the same
command may be written; a file, or a folder holding anything else, is the user's and refused in one line."""

from __future__ import annotations

import pytest

from hfspeech.errors import UsageError
from hfspeech.output_folders import check_output_folder, output_folder_problem


def is_export(name: str) -> bool:
    return name == "model.onnx"


def test_new_empty_and_earlier_outputs_may_be_written(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "earlier").mkdir()
    for name in ("model.onnx", "notes.txt"):  # an earlier output, with something the user added beside it
        (tmp_path / "earlier" / name).write_text("x")
    assert output_folder_problem(tmp_path / "new") is None
    assert output_folder_problem(tmp_path / "empty") is None
    assert output_folder_problem(tmp_path / "earlier", ours=is_export, earlier="an earlier export") is None


def test_a_file_or_a_folder_of_the_users_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    for name in ("a.txt", "b.txt", "c.txt", ".hidden"):  # hidden files are the user's too (.env, .git)
        (tmp_path / "mine" / name).write_text("x")
    (tmp_path / "file").write_text("x")
    assert output_folder_problem(tmp_path / "mine", ours=is_export, earlier="an earlier export") == (
        "holds other files (.hidden, a.txt, b.txt and 1 more), not an earlier export; give a new or empty folder")
    assert output_folder_problem(tmp_path / "file", ours=is_export, earlier="an earlier export") == (
        "is a file, not a folder; give a new or empty folder")
    with pytest.raises(UsageError, match=r"^--output_dir .*mine: holds other files .*, or pass --overwrite"):
        check_output_folder(tmp_path / "mine", "--output_dir", remedy="or pass --overwrite_output_dir")


def test_a_run_folder_whose_record_is_being_written_is_a_run_folder(tmp_path):
    """With two processes, the main one writes run_inputs.json (through a temporary file) while the other checks
    the output folder: the other one refused the folder and the launch failed now and then."""
    from hfspeech.training.checkpoints import check_output_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / ".run_inputs.json.tmp").write_text("{")
    check_output_dir(str(run))


def test_a_folder_holding_only_what_a_desktop_or_notebook_left_is_empty(tmp_path):
    """Finder's .DS_Store, Explorer's Thumbs.db: a folder of only these was refused as the user's ("holds other
    files (.DS_Store)"; reviewer R1); beside a file of the user's it still is, and so is a folder of Jupyter's
    checkpoints (a command replacing the whole folder deleted them: reviewer R4)."""
    (tmp_path / "opened").mkdir()
    for name in (".DS_Store", "Thumbs.db"):
        (tmp_path / "opened" / name).write_text("x")
    assert output_folder_problem(tmp_path / "opened", ours=is_export, earlier="an earlier export") is None
    (tmp_path / "opened" / ".ipynb_checkpoints").mkdir()
    assert output_folder_problem(tmp_path / "opened", ours=is_export, earlier="an earlier export") == (
        "holds other files (.ipynb_checkpoints), not an earlier export; give a new or empty folder")
