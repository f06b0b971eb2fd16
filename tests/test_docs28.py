"""Tables in the docs that describe the code, checked against it (docs audit, session 28): a new model family or
a new import between stages must show up in the page that lists them, or the page misleads."""

import re
from pathlib import Path

from tests.test_architecture import PACKAGE, imported_stages, stage_of

DOCS = Path(__file__).resolve().parents[1] / "docs"
BOTTOM_STAGES = {"data", "features", "models"}  # what the table's "bottom" stands for
# the modules under every stage (docs/architecture.md)
EVERY_STAGE_MAY_IMPORT = {"cache_folders", "cpu_threads", "errors", "file_owners", "folder_writers", "hidden_words",
                          "machine_refusals", "output_folders", "output_staging", "parser_rules", "path_names",
                          "temporary_folder", "written_elsewhere"}


def table_rows(page: str, first_header: str) -> list[list[str]]:
    """The cells of each body row of the table in `page` whose first header cell is `first_header`."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def documented_imports() -> dict[str, set[str]]:
    """docs/architecture.md's "may import" column, per package: its backticked stages, `bottom` expanded."""
    allowed = {}
    for cells in table_rows("architecture.md", "package"):
        package = cells[0].strip("`")
        names = {name.split(".")[0] for name in re.findall(r"`([\w.]+)`", cells[-1])}
        allowed[package] = names | (BOTTOM_STAGES if "bottom" in cells[-1] else set())
    return allowed


def test_architecture_table_lists_every_stage_a_package_imports():
    """Each cross-stage import in hfspeech/ is one the "may import" column of docs/architecture.md names."""
    allowed = documented_imports()
    undocumented = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = stage_of(path)
        if stage == "cli" or stage not in allowed:
            continue
        undocumented |= {(stage, target) for _, target in imported_stages(path)
                         if target != stage and target not in allowed[stage] | EVERY_STAGE_MAY_IMPORT}
    assert undocumented == set()


def test_models_table_has_every_baseline_with_its_default_front_end_and_pooling():
    """docs/models.md's table: one row per `--model_type` baseline, with the bins and pooling of its config."""
    from hfspeech.models import BASELINE_MODELS

    rows = {re.search(r"--model_type (\w+)", cells[0]).group(1): cells for cells in table_rows("models.md", "model_type")}
    assert set(rows) == set(BASELINE_MODELS)
    for name, spec in BASELINE_MODELS.items():
        config = spec.config_class()
        front_end, pooling = rows[name][1], rows[name][-1]
        assert rows[name][0].startswith(f"`{config.model_type}`"), name
        if config.feature_type == "mfcc":
            assert front_end.startswith(f"MFCC, {config.n_mfcc} coefficients"), name
        else:
            assert front_end.startswith(f"log-mel, {config.n_mels} bins"), name
        assert pooling.split()[0] == config.pooling, name
