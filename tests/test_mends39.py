"""Mends of session 39 made outside the helpers' files, each a case that failed before."""

from __future__ import annotations

import pytest

from hfspeech.errors import UsageError
from hfspeech.training.cross_validation_args import parse_cross_validation_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.mark.parametrize("folds", [["--num_fold", "3"], ["--num_fold=3"], ["--num_folds", "3"]])
def test_cross_validate_takes_an_abbreviation_of_num_folds_as_train_takes_its_flags(tmp_path, folds):
    """`hfspeech cross-validate --num_fold 3` passed the mistyped-flag check (an abbreviation argparse accepts) and
    then failed: "invalid training flags: Some specified arguments are not used by the HfArgumentParser"."""
    folds_args, _, data_args, training_args = parse_cross_validation_args(
        [*folds, "--train_file", str(tmp_path / "all.csv"), "--group_column", "speaker", "--output_dir",
         str(tmp_path / "cv"), "--model_type", "cnn"], prog="hfspeech cross-validate")
    assert folds_args.num_folds == 3 and data_args.group_column == "speaker"
    assert training_args.output_dir == str(tmp_path / "cv")


def test_a_value_that_starts_like_num_folds_is_left_to_its_flag(tmp_path):
    """`--run_name --num_fold`: argparse takes no value that looks like a flag, and says so of `--run_name`; made
    `--num_folds` first, the refusal named the wrong flag ("--num_folds: expected one argument", reviewer R3)."""
    with pytest.raises(UsageError, match="argument --run_name/--run-name: expected one argument"):
        parse_cross_validation_args(["--run_name", "--num_fold", "--train_file", str(tmp_path / "all.csv"),
                                     "--group_column", "speaker", "--output_dir", str(tmp_path / "cv")],
                                    prog="hfspeech cross-validate")
