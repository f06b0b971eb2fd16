"""What every `hfspeech` subcommand shares: one flag spelling (underscores; dashes still parse; the help shows
underscores only), and user mistakes as `HfspeechError`s that `main` prints as one line with exit code 2."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import hfspeech
from hfspeech.cli import COMMANDS, main
from hfspeech.cli.demo import demo_data_parser, demo_parser
from hfspeech.cli.export import export_parser
from hfspeech.cli.flags import CliParser, dashed
from hfspeech.cli.predict import predict_parser
from hfspeech.cli.serve import serve_parser
from hfspeech.cli.stream import stream_parser
from hfspeech.errors import HfspeechError

PARSERS = {"predict": predict_parser, "stream": stream_parser, "export": export_parser, "serve": serve_parser,
           "demo": demo_parser, "demo-data": demo_data_parser}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_flags_are_shown_with_underscores_and_parse_with_dashes_too(command):
    parser = PARSERS[command]()
    assert isinstance(parser, CliParser)
    help_text = parser.format_help()
    usage, options = help_text.split("options:")
    flags_in = lambda text: set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text))  # noqa: E731
    assert flags_in(usage) and not [flag for flag in flags_in(usage) if "-" in flag[2:]], usage
    # In the list, a dashed spelling comes only after its canonical one, as "(or --top-k)".
    canonical_list = re.sub(r"\(or [^)]*\)", "", options.split("Flags are spelled")[0])
    assert not [flag for flag in flags_in(canonical_list) if "-" in flag[2:]], options
    for action in parser._actions:
        canonical = [option for option in action.option_strings if option.startswith("--") and "_" in option]
        for option in canonical:
            assert parser._option_string_actions[dashed(option)] is action


def test_both_spellings_give_the_same_arguments():
    parser = predict_parser()
    underscores = parser.parse_args(["m", "a.wav", "--top_k", "2", "--window_seconds", "1.5", "--no_progress"])
    dashes = parser.parse_args(["m", "a.wav", "--top-k", "2", "--window-seconds=1.5", "--no-progress"])
    assert vars(underscores) == vars(dashes)
    assert (dashes.top_k, dashes.window_seconds, dashes.progress) == (2, 1.5, False)
    assert parser.parse_args(["m", "a.wav", "--top", "4"]).top_k == 4  # an abbreviation of both spellings


def test_every_command_runs_from_its_module():
    for name, (module, function) in COMMANDS.items():
        assert callable(getattr(importlib.import_module(f"hfspeech.cli.{module}"), function)), name


def error_classes() -> list[tuple[str, str]]:
    """(module, class) of every `class ...Error` in hfspeech/, read from the source."""
    root = Path(hfspeech.__file__).resolve().parent
    found = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                found.append((module, node.name))
    return found


def test_every_error_class_is_an_hfspeech_error():
    classes = error_classes()
    assert ("hfspeech.data.audio", "AudioFileError") in classes
    strays = [f"{module}.{name}" for module, name in classes
              if not issubclass(getattr(importlib.import_module(module), name), HfspeechError)]
    assert strays == []


def test_main_prints_a_user_mistake_as_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {tmp_path}")
    with pytest.raises(HfspeechError):
        main(["export", str(tmp_path), "--debug"])


def test_ctrl_c_is_one_line_and_exit_code_130_unless_debugging(monkeypatch, tmp_path, capsys):
    """A KeyboardInterrupt while a command imports torch or loads a model printed a traceback of several
    screens; the command stands in for any (they all run through `main`)."""
    import hfspeech.cli.models

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(hfspeech.cli.models, "tiny_model", interrupted)
    assert main(["tiny-model", str(tmp_path / "t")]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["hfspeech tiny-model: interrupted"]
    with pytest.raises(KeyboardInterrupt):
        main(["tiny-model", str(tmp_path / "t"), "--debug"])
