"""The benchmark scripts as a careless user meets them: before any measuring starts.

- every script's `--help` works, quickly, keeps its description whole and says what it writes;
- a bad input (a missing model folder, an output path that is a folder, a count that makes no sense, a Hub id
  where a local model belongs, arguments the wrong way round) is a short error naming the flag, before minutes
  of work, never a traceback and never a run that measures nothing or the wrong thing;
- every command line the documentation shows (README, docs/, recipes/, the scripts' own docstrings) still
  parses;
- what the results files record about the machine, so a reader can tell where a number came from;
- edge.py's int8 latency is timed on the one onnxruntime thread it reports; kill_resume.py works from any folder.

The scripts run as users run them (`python benchmarks/X.py ...`), in subprocesses started side by side.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = ["data_pipeline", "edge", "inference", "kill_resume", "memory", "pretrained", "serve", "speaker_centring",
           "training", "whisper_context", "whisper_label_words"]


def run_all(commands: dict[str, list[str]], cwd: Path) -> dict[str, subprocess.CompletedProcess]:
    """Each `[script, args...]` as `python benchmarks/script.py args...`, four at a time; no network."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")

    def run(command):
        script, *args = command
        return subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *args], capture_output=True,
                              text=True, timeout=120, cwd=cwd, env=env)

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(commands, pool.map(run, commands.values())))


@pytest.fixture(scope="module")
def helps(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    return run_all({script: [script, "--help"] for script in SCRIPTS}, tmp_path_factory.mktemp("help"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_says_what_the_script_measures_and_writes(helps, script):
    result = helps[script]
    assert result.returncode == 0, result.stderr[-2000:]
    text = "".join(result.stdout.split())  # argparse re-wraps the description, at spaces and hyphens
    source = (BENCHMARKS / f"{script}.py").read_text()
    first_paragraph = "".join(source.split('"""')[1].split("\n\n")[0].split())
    assert first_paragraph in text  # the description is not cut off mid-sentence
    assert "JSON" in text or "label_words.json" in text, "the help should say what the script writes"


# A folder and a file to give where the other is wanted; a model folder that is not there.
BAD_INPUTS = {
    "data_pipeline --num-clips 0": (["data_pipeline", "--num-clips", "0"], "--num-clips"),
    "data_pipeline --num-proc 0": (["data_pipeline", "--num-proc", "0"], "--num-proc"),
    "data_pipeline --output <folder>": (["data_pipeline", "--num-clips", "8", "--epochs", "2", "--num-proc", "1",
                                         "--in-process", "--work_dir", "w", "--output", "a_folder"], "is a folder"),
    "data_pipeline --work_dir <file>": (["data_pipeline", "--num-clips", "8", "--epochs", "2", "--num-proc", "1",
                                         "--in-process", "--work_dir", "a_file"], "--work_dir a_file: is a file"),
    "memory --sizes large small": (["memory", "--sizes", "24", "12", "--in-process", "--work_dir", "w"],
                                   "smaller count first"),
    "memory --sizes 0 4": (["memory", "--sizes", "0", "4"], "--sizes"),
    "memory --output <folder>": (["memory", "--sizes", "12", "24", "--in-process", "--work_dir", "w", "--output",
                                  "a_folder"], "is a folder"),
    "training --epochs 0": (["training", "--epochs", "0"], "--epochs"),
    "training --clips-per-class 0": (["training", "--clips-per-class", "0"], "--clips-per-class"),
    "inference --model <missing>": (["inference", "--model", "no_such_model", "--work_dir", "w"],
                                    "no_such_model: model folder not found"),
    "inference --eval_dir <missing>": (["inference", "--eval_dir", "no_such_dir", "--work_dir", "w"],
                                       "--eval_dir no_such_dir: not a folder"),
    "inference --rounds 0": (["inference", "--rounds", "0"], "--rounds"),
    "inference --threads 0": (["inference", "--threads", "0"], "--threads"),
    "serve --model <missing>": (["serve", "--model", "no_such_model", "--requests", "8", "--work_dir", "w"],
                                "no_such_model: model folder not found"),
    "serve --requests 0": (["serve", "--requests", "0"], "--requests"),
    "serve --rounds above --requests": (["serve", "--requests", "2", "--rounds", "5"], "--rounds 5"),
    "serve --output <folder>": (["serve", "--requests", "8", "--work_dir", "w", "--output", "a_folder"], "is a folder"),
    "serve load --clips <missing>": (["serve", "load", "--url", "http://127.0.0.1:9", "--clips", "no.npy",
                                      "--output", "o.json"], "--clips no.npy: file not found"),
    "kill_resume --epochs 0": (["kill_resume", "--epochs", "0"], "--epochs"),
    "kill_resume --kills -1": (["kill_resume", "--kills", "-1"], "--kills"),
    "kill_resume --output <folder>": (["kill_resume", "--kills", "0", "--noise_seeds", "0", "--epochs", "1",
                                       "--work_dir", "w", "--output", "a_folder"], "is a folder"),
    "pretrained --report <missing>": (["pretrained", "--report", "no.json"], "--report no.json"),
    "pretrained --steps 0": (["pretrained", "--steps", "0"], "--steps"),
    "edge --report <missing>": (["edge", "--report", "no.json"], "--report no.json"),
    "speaker_centring without {speaker}": (["speaker_centring", "one_model"], "{speaker}"),
    "speaker_centring <missing>": (["speaker_centring", "no_such/{speaker}"], "no_such/george: model folder not found"),
    "speaker_centring --clips 0": (["speaker_centring", "m/{speaker}", "--clips", "0"], "--clips"),
    "whisper_context --model <Hub id>": (["whisper_context", "--model", "openai/whisper-tiny"],
                                         "download nothing"),
    "whisper_context --windows 0": (["whisper_context", "--windows", "0"], "--windows"),
    "whisper_label_words --model <missing>": (["whisper_label_words", "--model", "no_such_model"],
                                              "neither a model folder"),
    "whisper_label_words --output <file>": (["whisper_label_words", "--output", "a_file"], "a_file: is a file"),
    "whisper_label_words --batch 0": (["whisper_label_words", "--batch", "0"], "--batch"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("bad")
    (cwd / "a_folder").mkdir()
    (cwd / "a_file").write_text("not a folder")
    return run_all({name: command for name, (command, _) in BAD_INPUTS.items()}, cwd)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_short_error_before_any_work(bad_runs, case):
    result, expected = bad_runs[case], BAD_INPUTS[case][1]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert expected in last and len(last) < 300, result.stderr[-1000:]


def test_results_record_the_machine_threads_and_library_versions():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import torch
        from _common import machine

        recorded = machine()
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert recorded["torch_threads"] == torch.get_num_threads() and recorded["cpu_count"] == os.cpu_count()
    assert recorded["cpu"] and recorded["torch"] == torch.__version__ and recorded["onnxruntime"]


def documented_commands() -> list[tuple[str, str]]:
    """`(script, arguments)` of every `python benchmarks/X.py ...` in the README, docs/, recipes/ and benchmarks/."""
    commands = set()
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("recipes/*/README.md"),
                 *BENCHMARKS.glob("*.py")]:
        text = path.read_text().replace("\\\n", " ")  # a command continued on the next line
        for match in re.finditer(r"python benchmarks/(\w+)\.py([^`#|\n]*)", text):
            commands.add((match.group(1), match.group(2).strip()))
    return sorted(commands)


@pytest.fixture(scope="module")
def parsers():
    """Each script's `parse_args`, imported as the script imports its helpers (sys.path and environment restored)."""
    saved_path, saved_environ = list(sys.path), dict(os.environ)
    modules = {}
    try:
        for script in SCRIPTS:
            spec = importlib.util.spec_from_file_location(f"benchmark_script_{script}", BENCHMARKS / f"{script}.py")
            modules[script] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[script])
    finally:
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_environ)
    return {script: module.parse_args for script, module in modules.items()}


def test_every_documented_command_line_parses(parsers):
    commands = documented_commands()
    assert {script for script, _ in commands} == set(SCRIPTS)  # each script is documented somewhere
    for script, arguments in commands:
        try:
            parsers[script](shlex.split(arguments))
        except SystemExit as error:
            pytest.fail(f"documented `python benchmarks/{script}.py {arguments}` does not parse (exit {error.code})")


def test_edge_latency_is_measured_on_one_onnxruntime_thread(tmp_path):
    """edge.py reports its int8 latency for one thread; onnxruntime's own default is every core."""
    import numpy as np
    import soundfile as sf

    from conftest import save_random_baseline, synth_clip

    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.edge import edge_measurements
    finally:
        sys.path.remove(str(ROOT))
    model = save_random_baseline(tmp_path / "model", "cnn", ["low", "high"], 0.02, conv_channels=[4, 8], n_mels=16)
    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(["low", "high", "low", "high"]):
        sf.write(tmp_path / f"{i}.wav", synth_clip(label, rng, 16000), 16000)
        rows.append(f"{tmp_path / f'{i}.wav'},{label}")
    (tmp_path / "test.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    measured = edge_measurements(model, tmp_path / "test.csv")
    assert measured["int8_threads"] == 1
    assert measured["int8_latency_ms"] > 0 and 0 <= measured["int8_test_accuracy"] <= 1


def test_kill_resume_runs_from_any_folder_with_a_relative_work_dir(tmp_path):
    """Its training runs start in the repository root; a relative --work_dir is the caller's, not the root's."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / "kill_resume.py"), "--kills", "0", "--noise_seeds", "0",
                             "--epochs", "1", "--work_dir", "kr"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, (result.stderr + (tmp_path / "kr" / "runs.log").read_text())[-3000:]
    results = json.loads((tmp_path / "kr" / "kill_resume.json").read_text())
    assert results["uninterrupted_metrics"]["test_accuracy"] >= 0 and results["settings"]["epochs"] == 1
    assert results["machine"]["torch_threads"] >= 1
