"""Mends of session 38 without a file of their own."""

from __future__ import annotations

import pytest

from hfspeech.errors import UsageError
from hfspeech.synthetic.spoken import _check_keywords


def test_a_decomposed_keyword_is_read_as_its_composed_word():
    assert _check_keywords(["zoe\u0308", "no"]) == ["zo\u00eb", "no"]


def test_a_keyword_composed_and_decomposed_is_one_keyword_twice():
    with pytest.raises(UsageError, match="unique"):
        _check_keywords(["zo\u00eb", "zoe\u0308"])


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    from tests.conftest import save_random_baseline

    return save_random_baseline(tmp_path_factory.mktemp("cnn") / "run", "cnn", ["low", "high"], 0.5,
                                conv_channels=[4, 8], n_mels=16, max_length_seconds=0.5)


@pytest.mark.parametrize("command", [["export", "{run}", "--format", "onnx", "--output", "{out}"],
                                     ["stage", "{run}", "{out}"]])
def test_a_run_still_training_is_not_exported_or_staged(saved_run, tmp_path, command, capsys):
    """A resumed run holds its earlier model while it trains on: `stage` published it (rc 0, no word), and both read
    files `train` may rewrite meanwhile. Held by another process as `train` holds its --output_dir."""
    from hfspeech.cli import main as cli
    from tests.test_concurrent38 import hold, let_go

    argv = [word.format(run=saved_run, out=tmp_path / "out") for word in command]
    holder = hold(saved_run)
    try:
        assert cli(argv) == 2
    finally:
        let_go(holder)
    assert "a training run is writing this folder now" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
