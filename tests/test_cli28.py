"""Command-line leftovers: the TorchScript twin traced while the run's folder is held, one wrapper for a full
stdout, one refusal of an unknown flag."""

from __future__ import annotations

import contextlib
import os
import sys

import pytest

from conftest import TINY_CNN, run_cli_output, save_random_baseline
from hfspeech.errors import UsageError
from hfspeech.training.checkpoints import output_dir_held


def test_a_second_run_started_while_the_twin_is_traced_is_refused(tone_folder, tmp_path, monkeypatch, capsys):
    """`hfspeech train` traced the twin after letting its folder go: a second run into it could start meanwhile."""
    import hfspeech.export.torchscript_export as torchscript_export
    from transformers import TrainingArguments

    run = tmp_path / "run"
    write_run_twin, refusals = torchscript_export.write_run_twin, []

    def second_run_then_trace(run_dir):  # a second `hfspeech train` into the folder starts as the twin is written
        try:
            with output_dir_held(TrainingArguments(output_dir=str(run), use_cpu=True, report_to="none")):
                pass
        except UsageError as refused:
            refusals.append(str(refused))
        return write_run_twin(run_dir)

    monkeypatch.setattr(torchscript_export, "write_run_twin", second_run_then_trace)
    code, _, err = run_cli_output(["train", "--data_dir", str(tone_folder), "--output_dir", str(run),
                                   "--model_type", "cnn", "--config_overrides", TINY_CNN, "--num_train_epochs", "1",
                                   "--max_steps", "1", "--max_length_seconds", "0.5", "--report_to", "none"], capsys)
    assert code == 0, err
    assert refusals == [f"--output_dir {run}: another training run is writing to this folder now; wait for it to "
                        "end (then run the same command again: it resumes), or give another --output_dir"]
    assert (run / "torchscript" / "model.torchscript.pt").is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device every write to fails on")
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_the_help_on_a_full_stdout_is_worded_as_results_on_a_full_stdout(flag, capsys, monkeypatch):
    full = open("/dev/full", "w")
    try:
        monkeypatch.setattr(sys, "stdout", full)
        code, _, err = run_cli_output([flag], capsys)
    finally:
        with contextlib.suppress(OSError):  # what the failed write left in its buffer
            full.close()
    assert code == 2  # the words of `predict --json > /dev/full` (tests/test_cli_pipes.py)
    assert err == "error: stdout: cannot write (No space left on device); make room where stdout goes, or send it " \
                  "elsewhere\n"


@pytest.mark.parametrize("args, said", [
    (["predict", "m", "a.wav", "--top_j", "3"], "unknown flag(s) ['--top_j'] (did you mean ['--top_k']?); "
                                                "`hfspeech predict --help` lists them"),
    (["predict", "m", "--x.wav"], "unknown flag(s) ['--x.wav']; --x.wav is read as a flag: for a file whose name "
                                  "starts with `-`, write ./--x.wav, or put `--` before the files (hfspeech predict "
                                  "... -- --x.wav); `hfspeech predict --help` lists them"),
    (["demo", "--num_train_epohcs", "1"], "unknown flag(s) ['--num_train_epohcs'] (did you mean "
                                          "['--num_train_epochs']?); `hfspeech demo --help` lists them"),
    (["evaluate", "m", "--bach_size", "2"], "unknown flag(s) ['--bach_size'] (did you mean ['--batch_size']?); "
                                            "`hfspeech evaluate --help` lists them"),
])
def test_an_unknown_flag_is_refused_in_the_same_words_by_every_parser(args, said, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # demo refuses before it writes anything
    code, out, err = run_cli_output(args, capsys)
    assert (code, out, err) == (2, "", f"error: {said}\n")
    assert list(tmp_path.iterdir()) == []


def test_an_int8_export_says_how_to_run_the_int8_file(trained_cnn, tone_folder, tmp_path, capsys):
    """A folder holding both files runs model.onnx: a user who exported int8 and predicted on the folder got the
    fp32 scores without a word (the tiniest CNNs' were even equal at three decimals)."""
    output = tmp_path / "onnx"
    code, out, err = run_cli_output(["export", str(trained_cnn), "--format", "onnx", "--quantize", "int8",
                                     "--output", str(output)], capsys)
    assert code == 0, err
    named = out.splitlines()[-1].split("hfspeech predict ")[1].split(" AUDIO")[0]
    assert named == str(output / "model_quantized.onnx") and os.path.isfile(named)
    clip = str(next(tone_folder.rglob("*.wav")))
    code, out, err = run_cli_output(["predict", named, clip, "--format", "jsonl"], capsys)
    assert code == 0 and clip in out, err  # the line's command runs


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device every write to fails on")
def test_debug_shows_the_traceback_of_a_full_stdout(trained_cnn, tone_folder):
    """`--debug` promises the traceback instead of the one line; the stdout wrapper's line had taken it back."""
    import subprocess

    clip = str(next(tone_folder.rglob("*.wav")))
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "hfspeech.cli", "predict", str(trained_cnn), clip, "--json",
                               "--debug"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr, done.stderr
    assert "OutputWriteError" in done.stderr.splitlines()[-1]


ENDINGS = [("SIGTERM", "terminated"),
           ("SIGHUP", "hung up (SIGHUP: its terminal closed; nohup, tmux or setsid outlive it)")]


@pytest.mark.parametrize("name, said", ENDINGS, ids=["SIGTERM", "SIGHUP"])
def test_sigterm_ends_a_command_as_ctrl_c_does_then_kills_it(tmp_path, name, said):
    """A cancelled CI job or `kill` sends SIGTERM, an ssh session closed under a command run without nohup SIGHUP:
    Python died of either at once (no word, no cleanup). A stream fed a window, then signalled: its last window and
    counts flushed, one line, then the signal's death."""
    import json
    import signal
    import subprocess

    import numpy as np

    signum = getattr(signal, name)
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    pcm = (np.random.default_rng(0).normal(0, 0.1, 16000 * 2) * 32767).astype("<i2").tobytes()
    stream = subprocess.Popen([sys.executable, "-m", "hfspeech.cli", "stream", str(model), "--window_seconds", "1",
                               "--windows"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))  # pytest under nohup too
    try:
        stream.stdin.write(pcm)
        stream.stdin.flush()
        first = json.loads(stream.stdout.readline())  # the model is loaded and classifying: now the signal
        stream.send_signal(signum)
        out, err = stream.communicate(timeout=120)
    finally:
        stream.kill()
    assert first["event"] == "window"
    assert json.loads(out.decode().splitlines()[-1])["event"] == "end"
    # cleaned up and said, then dead of the signal after all (the shell's status 143, 129), as the sender meant
    assert (stream.returncode, err.decode()) == (-signum, f"hfspeech stream: {said}\n")


def test_an_evaluation_stopped_before_its_metrics_file_is_run_again_into_its_folder(trained_cnn, tone_folder,
                                                                                     tmp_path, capsys):
    """Killed after its confusion matrix and report but before `<split>_metrics.json` (and data_report.json), the
    folder held only its own reports, and the rerun refused it as the user's ('not an earlier evaluation')."""
    out = tmp_path / "evaluation"
    arguments = ["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(out)]
    assert run_cli_output(arguments, capsys)[0] == 0
    for name in os.listdir(out):
        if name.endswith("_metrics.json") or name == "data_report.json":
            os.remove(out / name)  # as a kill between the reports and the metrics leaves it
    code, _, err = run_cli_output(arguments, capsys)
    assert code == 0, err
    assert any(name.endswith("_metrics.json") for name in os.listdir(out))


def test_a_child_forked_during_a_command_dies_of_sigterm_at_once():
    """A datasets decoding worker forked while a command runs inherited the Python-level handler, which runs only
    between bytecodes: a worker inside a long C call ignored SIGTERM, and Pool.terminate() waited for it."""
    import signal
    import time

    from hfspeech.cli.termination import sigterm_raises

    ready, started = os.pipe()
    with sigterm_raises():
        child = os.fork()
        if child == 0:  # the child busy in one long C call, as a decoder is
            os.write(started, b"x")  # past fork's hooks: its SIGTERM is what it will be while decoding
            sum(range(10 ** 12))  # no bytecode runs until it ends: a Python-level handler waits for it
            os._exit(0)
        os.read(ready, 1)
        os.kill(child, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(child, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        if done == (0, 0):  # a handler the C call never returns to: the child would block for good
            os.kill(child, signal.SIGKILL)
            done = os.waitpid(child, 0)
    os.close(ready), os.close(started)
    status = done[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])  # SIGHUP: as `nohup` leaves it
def test_a_signal_the_parent_ignores_stays_ignored(name):
    import signal

    from hfspeech.cli.termination import sigterm_raises

    signum = getattr(signal, name)
    previous = signal.signal(signum, signal.SIG_IGN)
    try:
        with sigterm_raises():
            assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, previous)
