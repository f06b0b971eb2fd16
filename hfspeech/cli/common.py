"""What several subcommands share: the model argument, backends, and how a user's mistake is reported."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from hfspeech.cli.flags import CliParser, MovedFlags, dashed, parsed_whole, switch_values_read
from hfspeech.errors import HfspeechError, UsageError
from hfspeech.hidden_words import hide_secrets
from hfspeech.parser_rules import home_expanded, refuse_unknown_flags

MODEL_HELP = "model folder (or Hub id), `hfspeech export` folder, or .onnx / .pt file"
MODEL_FIRST_HELP = MODEL_HELP + " (--model MODEL works too, as on evaluate)"  # FilesParser's commands
BACKENDS = ["pytorch", "onnx", "torchscript"]
BACKEND_HELP = "force the backend for a folder holding several (default: the one the path holds)"
TRUST_REMOTE_CODE_HELP = ("run the model folder's own Python code (transformers' trust_remote_code): only for a model "
                          "you trust; --trust_remote_code false|true works too, as on train")


def one_line(error: BaseException, argv=None) -> str:
    """The error's message on one line: `error: <message>`, without the secrets of `argv` (default: this
    process's arguments) or anything shaped like a Hugging Face token (`hidden_words.hide_secrets`)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return "error: " + hide_secrets(text, sys.argv[1:] if argv is None else list(argv))


def print_error(error: BaseException, argv=None) -> None:
    print(one_line(error, argv), file=sys.stderr)


@contextmanager
def reported_as_user_errors(*kinds: type[BaseException]):
    """Inside, the library errors of `kinds` that a user's input causes (a missing file: OSError; a value a
    library refuses: ValueError) become `HfspeechError`s with the same message, so that `hfspeech.cli.main`
    prints them as one line and exits with 2, as it does every error of hfspeech's own. A system library that
    could not be loaded (`OSError: cannot load library 'libsndfile.so'`) is the machine's lack, not the user's
    input: it goes on to `hfspeech.cli.main`, which names the package to install (`cli.extras`). So does a path
    this user may not read (EACCES, EPERM), which main says plainly (`file_owners.access_refusal`): it was the raw
    `error: [Errno 13] Permission denied: 'mdl/config.json'`."""
    import errno

    from hfspeech.data.system_libraries import missing_library
    from hfspeech.temporary_folder import no_temporary_folder

    try:
        yield
    except (HfspeechError, BrokenPipeError):  # a reader that has gone (`| head`): main ends quietly, 141
        raise
    except kinds as error:
        if missing_library(error) is not None or getattr(error, "errno", None) in (errno.EACCES, errno.EPERM) \
                or no_temporary_folder(error) is not None:  # the machine's lack: main says it in its own words
            raise
        raise HfspeechError(str(error)) from error


def without_generation_sklearn() -> None:
    """Import transformers' text-generation helpers without scikit-learn, in a CLI process that only classifies.

    `transformers.generation.candidate_generator` imports `sklearn.metrics` when it loads (for assisted
    decoding's `roc_curve`), and every `PreTrainedModel` import loads it: about a quarter of a cold
    `hfspeech predict` with a PyTorch model (scipy comes with it). A classifier never generates, so for
    `predict` and `stream` the module is imported once with transformers told sklearn is absent. Only these
    commands' own processes do this; the library (`AudioClassifier`) never changes transformers' state.
    """
    import importlib
    import sys

    if "transformers.generation.candidate_generator" in sys.modules:
        return
    from transformers.utils import import_utils

    available = import_utils._sklearn_available
    import_utils._sklearn_available = False
    try:
        importlib.import_module("transformers.generation.candidate_generator")
    finally:
        import_utils._sklearn_available = available


def prepare_cold_start(model: str, backend) -> None:
    """Before loading a model for `predict` / `stream`: a PyTorch one skips scikit-learn (see above); an export
    imports neither torch nor transformers at all."""
    from hfspeech.inference.backends import locate_model

    try:
        kind = locate_model(model, backend)[0]
    except Exception:  # a bad path: the loader reports it
        return
    if kind == "pytorch":
        without_generation_sklearn()


def model_first(argv) -> MovedFlags:
    """`--model RUN` (or `--model=RUN`), as `hfspeech evaluate` takes the model, read as the MODEL that `predict`,
    `stream`, `serve`, `export`, `stage` and `push` take first: `hfspeech predict --model RUN clips/` was "unknown
    flag(s) ['--model'] (did you mean ['--help']?)"."""
    return flag_as_positional(argv, "--model", first=True)


def flag_as_positional(argv, flag: str, first: bool) -> MovedFlags:
    """`FLAG VALUE` (or `FLAG=VALUE`, or the dashed spelling) read as the positional argument it names: put first, or
    last (`first=False`: stage's DEST after its RUN, pretrained's OUTPUT_DIR after its NAME). Only before a `--`,
    after which every word is a file. A folder flag of `train` and `demo` (`--output_dir`) thus works where the
    folder is a positional (`demo-data`, `tiny-model`, `pretrained`, `stage`). The flag given twice is refused here
    (`--model a --model b` was "unknown flag(s) ['--model']"); given beside the positional, by the parser
    (`flags.parsed_whole`, told by the `MovedFlags` returned)."""
    import os

    words, moved = list(argv), getattr(argv, "moved", ())
    end = words.index("--") if "--" in words else len(words)
    found = [(i, *word.partition("=")[1:]) for i, word in enumerate(words[:end])
             if word.partition("=")[0] in (flag, dashed(flag)) and ("=" in word or i + 1 < end)]
    # (expanded as `home_expanded` does)
    values = [os.path.expanduser(value) if equals else words[i + 1] for i, equals, value in found]
    if len(values) > 1:
        raise UsageError(f"{flag} given {'twice' if len(values) == 2 else f'{len(values)} times'} "
                         f"({', '.join(values)}): give it once")
    if not found:
        return MovedFlags(words, moved)
    i, equals, _ = found[0]
    rest = words[:i] + words[i + (1 if equals else 2):]
    at = 0 if first else end - (1 if equals else 2)
    return MovedFlags(rest[:at] + [values[0]] + rest[at:], (*moved, (flag, values[0], first)))


def holds_a_model(path: str) -> bool:
    """A model folder (config.json and weights, as `models.folder_checks` asks) or an exported model file, where MODEL
    goes: `predict RUN --model RUN2 a.wav` classified with RUN2, then failed on RUN as a folder without audio files. A
    folder of audio with a config.json of its own is no model (`predict --model RUN data` was refused)."""
    import os

    from hfspeech.export.staging import is_model_file
    from hfspeech.models.loading import WEIGHT_FILES

    if os.path.isfile(path):
        return is_model_file(path.lower())
    return os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES)


def dash_file_hint(message: str, argv, options, prog: str) -> str:
    """`; a file whose name starts with - ...` when a parser's refusal (`message`) is about a word of `argv` that
    is no flag of `options` but a file name starting with `-` (`-take1.wav`): argparse read it as a flag and
    said only "unrecognized arguments", or, after a flag that takes a value, "expected one argument"."""
    import os

    words = list(argv)[: list(argv).index("--")] if "--" in argv else list(argv)
    after_flag = {words[i + 1]: words[i] for i in range(len(words) - 1)
                  if words[i].startswith("--") and f"argument {words[i]}" in message}
    for word in words:
        name = word.split("=", 1)[0]
        if not word.startswith("-") or word in ("-", "--") or name in options:
            continue
        if not (os.path.lexists(word) or "." in word) or (word not in message and word not in after_flag):
            continue
        if word in after_flag:
            return (f"; {word} is read as a flag: for a file whose name starts with `-`, write "
                    f"{after_flag[word]} ./{word} (or {after_flag[word]}={word})")
        return (f"; {word} is read as a flag: for a file whose name starts with `-`, write ./{word}, or put `--` "
                f"before the files ({prog} ... -- {word})")
    return ""


class FilesParser(CliParser):
    """A `CliParser` for commands taking MODEL first: `--model MODEL` is read as it (`model_first`), and its
    refusal of a file named `-x.wav` says how to give it (`dash_file_hint`)."""

    def parse_args(self, args=None, namespace=None):
        """Files and flags in any order, as `ls` and `cp` take them: `predict MODEL --top_k 1 a.wav` was
        "unrecognized arguments: a.wav" (argparse gives every positional its words at the first one, so the
        files got none after a flag); `parse_known_intermixed_args` gathers them over the whole line, and
        `flags.parsed_whole` refuses what is left (a positional given twice too)."""
        words = model_first(sys.argv[1:] if args is None else args)
        self.given = switch_values_read(self, home_expanded(self, words))
        refuse_unknown_flags(self, self.given)
        return parsed_whole(self, words, *self.parse_known_intermixed_args(self.given, namespace), twice=holds_a_model)

    def error(self, message: str):
        """The hint on a file named `-x.wav` goes before the `; `PROG --help` lists them` that ends an unknown
        flag's refusal (`parser_rules.refuse_unknown_flags`), as it goes before the one `CliParser.error` adds."""
        said = message.removesuffix(f"; `{self.prog} --help` lists them")
        hint = dash_file_hint(message, getattr(self, "given", []), self._option_string_actions, self.prog)
        super().error(said + hint + message[len(said):])
