"""A model path with a typo, whose parent folder exists here, is told as a local typo with the folders beside it,
not as a Hub id to `hf download` (`runs/kws-cn` reads as namespace `runs`, repo `kws-cn`)."""

from __future__ import annotations

import pytest

from hfspeech.cli import main as cli


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE for one test. huggingface_hub caches one requests session per thread, built with an
    adapter that refuses every request while offline: reset after, or later tests' localhost servers are
    'offline' too (test_serve's InferenceClient failed so)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never the Hub
    reset_sessions()
    yield
    monkeypatch.undo()
    reset_sessions()


def test_a_mistyped_run_folder_names_the_nearest_folder(tmp_path, monkeypatch, capsys, offline):
    (tmp_path / "runs" / "kws-cnn").mkdir(parents=True)
    (tmp_path / "runs" / "lid").mkdir()
    monkeypatch.chdir(tmp_path)
    clip = tmp_path / "x.wav"
    clip.write_bytes(b"")
    assert cli(["predict", "runs/kws-cn", str(clip)]) != 0
    assert "runs/kws-cn: no such folder (did you mean runs/kws-cnn?)" in capsys.readouterr().err
    assert cli(["predict", "runs/zzz", str(clip)]) != 0
    error = capsys.readouterr().err
    assert "runs/zzz: no such folder (runs/ holds kws-cnn, lid)" in error and "hf download" not in error
