"""hfspeech installed as a package, not only checked out: `python -m hfspeech` runs the command (an environment whose
scripts folder is not on PATH, e.g. a notebook's kernel), and the source distribution carries what the tests read
beside the package (the pins, recipes, benchmarks, docs, scripts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_python_dash_m_hfspeech_is_the_hfspeech_command():
    result = subprocess.run([sys.executable, "-m", "hfspeech", "--version"], capture_output=True, text=True,
                            timeout=120, cwd=REPO / "tests")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("hfspeech ")


def folders_the_tests_read() -> set[str]:
    """The repository's own folders (not the package, the tests, the venv) that some test names by path."""
    tests_text = "\n".join(path.read_text(encoding="utf-8") for path in (REPO / "tests").glob("*.py"))
    candidates = {folder.name for folder in REPO.iterdir() if folder.is_dir()} - {"tests", "hfspeech", ".venv", ".git"}
    return {name for name in candidates if f'"{name}"' in tests_text or f"{name}/" in tests_text}


def test_the_source_distribution_grafts_every_folder_the_tests_read():
    """A test reading `recipes/...` or `benchmarks/...` from an sdist without them failed (sdist audit)."""
    manifest = (REPO / "MANIFEST.in").read_text().splitlines()
    read = folders_the_tests_read()
    assert {"recipes", "benchmarks", "docs", "scripts"} <= read  # else the check above is broken
    assert sorted(name for name in read if f"graft {name}" not in manifest) == []
    assert any(line.startswith("include ") and "constraints.txt" in line.split() for line in manifest)
