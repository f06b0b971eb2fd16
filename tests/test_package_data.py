"""Files the package reads at run time ship with it: they live inside `hfspeech/` and pyproject declares them,
so a built wheel (which holds only declared package data) has them. Nothing is built here."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib import resources
from pathlib import Path

import hfspeech

PACKAGE_DIR = Path(hfspeech.__file__).resolve().parent
PYPROJECT = PACKAGE_DIR.parent / "pyproject.toml"


def declared_patterns() -> list[str]:
    """Package-data globs of pyproject, as paths relative to hfspeech/ (`hfspeech.hub` + `templates/*`)."""
    package_data = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    return [str(Path(*package.split(".")[1:], pattern)) for package, patterns in package_data.items()
            for pattern in patterns]


def test_the_model_card_template_is_package_data():
    from hfspeech.hub.card import TEMPLATE

    template = resources.files("hfspeech.hub") / "templates" / "audio_classification.md"
    assert template.is_file() and "{{ labels_table }}" in template.read_text()
    assert Path(str(TEMPLATE)).resolve() == Path(str(template)).resolve()
    assert Path(str(template)).resolve().is_relative_to(PACKAGE_DIR)
    assert any(fnmatch.fnmatch("hub/templates/audio_classification.md", p) for p in declared_patterns())


def test_every_data_file_in_the_package_is_declared():
    data_files = [path.relative_to(PACKAGE_DIR).as_posix() for path in PACKAGE_DIR.rglob("*")
                  if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts]
    assert data_files, "the package holds no data files: the model-card template is missing"
    patterns = declared_patterns()
    undeclared = [name for name in data_files if not any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert undeclared == [], f"not in [tool.setuptools.package-data] of pyproject.toml: {undeclared}"
