"""A model path with a typo, whose parent folder exists here, is told as a local typo with the folders beside it,
not as a Hub id to `hf download` (`runs/kws-cn` reads as namespace `runs`, repo `kws-cn`)."""

from __future__ import annotations

from hfspeech.cli import main as cli


def test_a_mistyped_run_folder_names_the_nearest_folder(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    (tmp_path / "runs" / "kws-cnn").mkdir(parents=True)
    (tmp_path / "runs" / "lid").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never the Hub
    clip = tmp_path / "x.wav"
    clip.write_bytes(b"")
    assert cli(["predict", "runs/kws-cn", str(clip)]) != 0
    assert "runs/kws-cn: no such folder (did you mean runs/kws-cnn?)" in capsys.readouterr().err
    assert cli(["predict", "runs/zzz", str(clip)]) != 0
    error = capsys.readouterr().err
    assert "runs/zzz: no such folder (runs/ holds kws-cnn, lid)" in error and "hf download" not in error
