"""The stages import downwards only (docs/architecture.md), read from every import statement in hfspeech/,
including the ones inside functions: a lazy import that points up is still a dependency that points up."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hfspeech"

# What each stage must not import. The bottom (data, features, models) imports only itself and the bottom (features,
# the lowest, imports none of the others); nothing imports the CLI.
FORBIDDEN = {
    "data": {"training", "evaluation", "inference", "export", "hub", "serve", "cli", "synthetic"},
    "features": {"data", "models", "training", "evaluation", "inference", "export", "hub", "serve", "cli", "synthetic"},
    "models": {"data", "training", "evaluation", "inference", "export", "hub", "serve", "cli", "synthetic"},
    "inference": {"training", "evaluation", "export", "hub", "serve", "cli", "synthetic"},
    "evaluation": {"training", "export", "hub", "serve", "cli", "synthetic"},
    "export": {"training", "evaluation", "inference", "hub", "serve", "cli", "synthetic"},
    "hub": {"training", "serve", "cli", "synthetic"},
    "training": {"inference", "export", "serve", "cli", "synthetic"},
    "serve": {"training", "evaluation", "export", "hub", "cli", "synthetic"},
    "synthetic": {"training", "evaluation", "inference", "export", "hub", "serve", "cli"},
}


# hfspeech/<name>.py that every stage may import; they import only each other
BOTTOM = {"cache_folders", "cpu_threads", "errors", "file_owners", "folder_writers", "hidden_words", "machine_refusals",
          "output_folders", "output_staging", "parser_rules", "path_names", "temporary_folder", "written_elsewhere"}


def stage_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if relative.parts else ""


def imported_stages(path: Path) -> list[tuple[int, str]]:
    """(line, stage) for every `import hfspeech.X...` / `from hfspeech.X... import` in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        found += [(node.lineno, name.split(".")[1]) for name in names
                  if name.startswith("hfspeech.") and len(name.split(".")) > 1]
    return found


def test_imports_point_down_the_stages():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = stage_of(path)
        violations += [f"{path.relative_to(PACKAGE.parent)}:{line} ({stage} imports {target})"
                       for line, target in imported_stages(path) if target in FORBIDDEN.get(stage, ())]
    assert violations == []


def test_the_checker_sees_lazy_imports_that_point_up(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("import os\n\ndef f():\n    from hfspeech.training.run import main\n    import hfspeech.cli\n")
    assert imported_stages(module) == [(4, "training"), (5, "cli")]


def test_every_stage_is_known():
    stages = {stage_of(path) for path in PACKAGE.rglob("*.py")} - {"__init__", "__main__", "cli"} - BOTTOM
    assert stages <= set(FORBIDDEN), stages - set(FORBIDDEN)


def test_the_bottom_layer_imports_only_itself():
    imports = {name: {target for _, target in imported_stages(PACKAGE / f"{name}.py")} for name in BOTTOM}
    assert {name: targets - BOTTOM for name, targets in imports.items()} == {name: set() for name in BOTTOM}


def test_staging_a_repo_does_not_import_the_exporters():
    """`hfspeech stage` / `push` work without the `export` extra (optimum, onnx): hub shares export's helpers only
    through the bottom layer (output_folders.named_at), never by importing hfspeech.export."""
    import subprocess
    import sys

    heavy = ("optimum", "evaluate", "sklearn", "transformers")  # the last three: the report writer's, which stage
    # imported for its files' names alone (evaluation.report_names), 60% of the import (helper S)
    done = subprocess.run([sys.executable, "-c", f"import sys, hfspeech.hub.stage; print([name for name in {heavy!r} "
                           "if name in sys.modules])"], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
