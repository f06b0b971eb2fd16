"""The command lines the docs show, checked against the commands themselves (docs audit, session 30): a flag a page
puts after `hfspeech COMMAND` that the command does not take, a default in brackets that is not the parser's, or an
error line quoted as the command no longer prints it sends a reader to a mistake the page made."""

import contextlib
import io
import re
from functools import lru_cache
from pathlib import Path

import pytest

from hfspeech.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md"] + sorted(str(page.relative_to(ROOT))
                                for page in [*ROOT.glob("docs/*.md"), *ROOT.glob("recipes/*/README.md")])
COMMAND_PATTERN = "|".join(sorted(map(re.escape, COMMANDS), key=len, reverse=True))
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][A-Za-z0-9_-]*[A-Za-z0-9]")  # dashed spellings whole: `--max-batch-size`


@lru_cache(maxsize=None)
def help_text(command: str) -> str:
    """`hfspeech COMMAND --help` as the user reads it (in this process: one import of transformers for all)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            assert main([command, "--help"]) in (0, None)
        except SystemExit as done:  # argparse's own --help
            assert done.code in (0, None)
    return out.getvalue()


def option_strings(command: str) -> set[str]:
    """The flags the command takes, as its --help declares them: the usage lines (`[--top_k TOP_K]`) and the dashed
    spellings (`(or --top-k)`), not any `--x` a help text mentions in passing."""
    text = help_text(command)
    usage = text.split("\n\n", 1)[0]
    return set(FLAG.findall(usage)) | set(re.findall(r"\(or (--[\w-]+)\)", text))


def deliberate_typos(text: str) -> set[str]:
    """Flags a page misspells on purpose, to show the error: those quoted in an `unknown flag(s) [...]` line."""
    return {flag for quoted in re.findall(r"unknown flag\(s\) \[([^\]]*)\]", text) for flag in FLAG.findall(quoted)}


def flags_after_commands(page: str) -> list[tuple[str, str, str]]:
    """(line, command, flag) for each flag written after `hfspeech COMMAND` (or `recipes/finetune.py`, whose flags
    are `hfspeech train`'s) on one line of `page`, a line continued with `\\` included."""
    found = []
    for line in (ROOT / page).read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        for match in re.finditer(rf"(?:hfspeech ({COMMAND_PATTERN})(?![\w-])|recipes/finetune\.py)([^`\n|#]*)", line):
            found += [(line, match.group(1) or "train", flag) for flag in FLAG.findall(match.group(2))]
    return found


@pytest.mark.parametrize("page", PAGES)
def test_every_flag_written_after_a_command_is_one_that_command_takes(page):
    """`hfspeech serve ... --max_batch_size 1`: the command's --help lists the flag (or the page shows its error)."""
    typos = deliberate_typos((ROOT / page).read_text(encoding="utf-8"))
    unknown = [(line, command, flag) for line, command, flag in flags_after_commands(page)
               if flag not in typos and flag != "--help" and flag not in option_strings(command)]
    assert unknown == []


def help_defaults(command: str) -> dict[str, str]:
    """Each flag's `(default: X)` in the command's --help (HfArgumentParser writes one for every dataclass field)."""
    defaults = {}
    for entry in re.split(r"\n  (?=--)", help_text(command)):
        flag = re.match(r"--\w+", entry)
        default = re.search(r"\(default:\s*(.*?)\)\s*$", " ".join(entry.split()))
        if flag and default:
            defaults[flag.group(0)] = default.group(1)
    return defaults


def same_value(written: str, parsed: str) -> bool:
    try:
        return float(written) == float(parsed)
    except ValueError:
        return written == parsed


def test_training_page_defaults_in_brackets_are_the_recipes():
    """docs/training.md's tables: `--flag` [default] (or `--a`, `--b` [x, y]) is what `hfspeech train` defaults to."""
    defaults = help_defaults("train")
    checked = 0
    for line in (ROOT / "docs/training.md").read_text(encoding="utf-8").splitlines():
        cell = re.match(r"\| ((?:`--\w+[^`]*`(?:, )?)+) \[([^\]]+)\] \|", line)
        if not cell or "when" in cell.group(2):  # `--disable_tqdm` [True when stderr is not a terminal]: not a value
            continue
        flags = re.findall(r"`(--\w+)", cell.group(1))
        values = [value.strip() for value in cell.group(2).split(",")]
        pairs = zip(flags, values) if len(values) == len(flags) else [(flags[-1], cell.group(2))]
        for flag, value in pairs:
            assert same_value(value, defaults[flag]), (flag, value, defaults[flag])
            checked += 1
    assert checked >= 15  # the page's tables were read, not skipped


def test_cli_page_quotes_evaluates_flag_errors_as_evaluate_prints_them(capsys, tmp_path):
    """docs/cli.md quotes `hfspeech evaluate`'s line for a value of the wrong type; it is the line printed."""
    text = " ".join((ROOT / "docs/cli.md").read_text(encoding="utf-8").split())
    quoted = re.search(r"`hfspeech evaluate` words its flag mistakes as the others do \(`(error: argument [^`]*)`",
                       text)
    code = main(["evaluate", "--model", str(tmp_path), "--data_dir", str(tmp_path), "--output_dir",
                 str(tmp_path / "out"), "--batch_size", "x"])
    assert code == 2
    assert quoted.group(1) in capsys.readouterr().err


def test_readme_documentation_list_names_every_page_the_index_names():
    """The README says docs/index.md "lists every page" and repeats the list: both name the same pages."""
    index = (ROOT / "docs/index.md").read_text(encoding="utf-8")
    readme_section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Documentation", 1)[1]
    index_pages = {page for page in re.findall(r"\]\(([\w-]+\.md)(?:#[^)]*)?\)", index)}
    readme_pages = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", readme_section)) - {"index.md"}
    assert readme_pages == index_pages
