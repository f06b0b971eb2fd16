"""hfspeech in scripts, pipes and CI logs (audit OU, helper NJ): JSON any parser reads from a model whose scores are
NaN (with one warning), a pipe given to `predict` as a file, an empty stream, and logs without datasets' bars or
matplotlib's INFO lines."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli_output, save_random_baseline, synth_clip, write_csv_manifest

TINY = dict(n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)
LABELS = ["low", "high", "noise"]
NOT_FINITE = "warning: the model gave NaN or infinite scores"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("model") / "cnn", "cnn", LABELS, 0.5, **TINY)


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory) -> Path:
    """A run whose every weight is NaN, as a training run that diverged leaves it."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = save_random_baseline(tmp_path_factory.mktemp("nan") / "cnn", "cnn", LABELS, 0.5, **TINY)
    weights = load_file(folder / "model.safetensors")
    save_file({name: torch.full_like(value, float("nan")) if value.is_floating_point() else value
               for name, value in weights.items()}, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("clips")
    for i, kind in enumerate(LABELS):
        sf.write(folder / f"{kind}.wav", synth_clip(kind, np.random.default_rng(i), 16000, 1.2), 16000)
    return [str(folder / f"{kind}.wav") for kind in LABELS]


def strict_json(line: str):
    """`line` parsed as JSON.parse parses it: a bare NaN or Infinity is an error, not a float."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("flags", [["--json"], ["--format", "jsonl"]], ids=["json", "jsonl"])
def test_nan_scores_are_null_in_predicts_json_with_one_warning_for_the_run(nan_model, clips, capsys, caplog, flags):
    code, out, err = run_cli_output(["predict", str(nan_model), *clips, *flags], capsys)
    rows = [strict_json(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 3, err
    assert all(p["score"] is None for row in rows for p in row["predictions"])
    assert warnings_of_nan(caplog) == 1  # once per run, not per file (on stderr: logging's, as every `warning:`)


def warnings_of_nan(caplog) -> int:
    return sum(message.startswith(NOT_FINITE) for message in caplog.messages)


def test_nan_scores_are_null_in_an_output_file_and_nan_in_csv(nan_model, clips, tmp_path, capsys):
    jsonl, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    for output in (jsonl, table):
        assert run_cli_output(["predict", str(nan_model), clips[0], "--output", str(output)], capsys)[0] == 0
    [row] = [strict_json(line) for line in jsonl.read_text().splitlines()]
    assert [p["score"] for p in row["predictions"]] == [None, None, None]
    assert table.read_text().splitlines()[1].split(",")[2:5] == ["nan", "low|high|noise", "nan|nan|nan"]


def test_a_finite_model_says_nothing_of_nan(model, clips, capsys, caplog):
    code, out, err = run_cli_output(["predict", str(model), clips[0], "--json"], capsys)
    assert code == 0 and all(isinstance(p["score"], float) for p in strict_json(out)["predictions"])
    assert warnings_of_nan(caplog) == 0


def run_stream(args: list[str], stdin: bytes, capsys, monkeypatch, tmp_path) -> tuple[int, str, str]:
    """`hfspeech stream ARGS` in this process with `stdin` as its standard input (a file, as a pipe reads)."""
    import io
    import sys

    source = tmp_path / "stdin.bin"
    source.write_bytes(stdin)
    with source.open("rb") as handle:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(handle))
        return run_cli_output(["stream", *args], capsys)


def test_stream_windows_of_nan_scores_are_null(nan_model, clips, capsys, caplog, monkeypatch, tmp_path):
    code, out, err = run_stream([str(nan_model), "--windows"], Path(clips[0]).read_bytes(), capsys, monkeypatch,
                                tmp_path)
    lines = [strict_json(line) for line in out.splitlines()]
    windows = [line for line in lines if line["event"] == "window"]
    assert code == 0 and windows and all(score is None for line in windows for score in line["scores"]), out
    assert warnings_of_nan(caplog) == 1


def test_a_stream_that_ends_before_any_audio_warns_and_exits_0(model, capsys, monkeypatch, tmp_path):
    code, out, err = run_stream([str(model)], b"", capsys, monkeypatch, tmp_path)
    assert code == 0 and strict_json(out.splitlines()[-1])["samples"] == 0
    assert err.startswith("warning: no audio arrived: stdin ended before its first sample") and err.count("\n") == 1


def test_a_stream_with_audio_does_not_warn_of_none(model, clips, capsys, monkeypatch, tmp_path):
    code, _, err = run_stream([str(model)], Path(clips[0]).read_bytes(), capsys, monkeypatch, tmp_path)
    assert code == 0 and "no audio arrived" not in err, err


def test_a_pipe_given_to_predict_is_named_a_pipe_not_an_empty_file(model, clips, capsys):
    """`cat a.wav | hfspeech predict RUN /dev/stdin` (or `<(...)`, a FIFO) said "file is empty (0 bytes)"."""
    reading, writing = os.pipe()
    try:
        os.write(writing, Path(clips[0]).read_bytes()[:4096])
        code, out, err = run_cli_output(["predict", str(model), f"/dev/fd/{reading}"], capsys)
    finally:
        os.close(reading)
        os.close(writing)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: /dev/fd/{reading}: a pipe, not a file") and "`hfspeech stream MODEL`" in err, err


def test_pooled_rescoring_draws_no_datasets_bars_into_a_log(model, clips, tmp_path, capsys, monkeypatch):
    """cross-validate's held-out re-scoring put datasets' "Casting the dataset" bars (`\\r` redraws) into a log."""
    from hfspeech.training.arguments import DataArguments
    from hfspeech.training.cross_validation_pooled import score_held_out

    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    manifest = write_csv_manifest(tmp_path / "test.csv", [{"path": clip, "label": label}
                                                          for clip, label in zip(clips, LABELS)])
    fold = DataArguments(test_file=manifest)
    capsys.readouterr()
    scored = score_held_out(str(model), fold, None, batch_size=4)
    err = capsys.readouterr().err
    assert len(scored.references) == 3 and "\r" not in err and "Casting the dataset" not in err, err


def test_the_training_log_leaves_out_matplotlibs_info_but_not_its_warnings(monkeypatch, capsys):
    """A fresh matplotlib cache put `INFO matplotlib.font_manager: generated new fontManager` in every CI train log."""
    from hfspeech.training import run
    from hfspeech.training.command_line import process_state_kept

    class SetUp(Exception):
        """Stops `setup_training` once its log is set up: the rest needs data and a model."""

    def stop() -> None:
        raise SetUp

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a fresh process's root, as the command line has (pytest adds its own)
    monkeypatch.setattr(run, "default_transformers_verbosity", stop)
    capsys.readouterr()
    with process_state_kept():  # takes the log's handler off again at the end
        with pytest.raises(SetUp):
            run.setup_training(None, None, None)
        logging.getLogger("matplotlib.font_manager").info("generated new fontManager")
        logging.getLogger("matplotlib.font_manager").warning("findfont: Font family 'Nope' not found.")
        logging.getLogger("hfspeech.train").info("model: cnn")
    err = capsys.readouterr().err
    assert "generated new fontManager" not in err, err
    assert "WARNING matplotlib.font_manager: findfont" in err and "INFO hfspeech.train: model: cnn" in err, err


def test_the_servers_answers_of_nan_scores_are_null_not_a_500(nan_model, clips):
    """Starlette refuses NaN in a JSON response: `POST /` answered 500 "internal server error", and `POST /stream`
    (whose lines are not Starlette's) answered `"scores": [NaN, ...]`."""
    from starlette.testclient import TestClient

    from hfspeech.serve.app import ServeSettings, create_app

    audio = Path(clips[0]).read_bytes()
    with TestClient(create_app(ServeSettings(model=str(nan_model), request_timeout=5.0))) as client:
        answer = client.post("/", content=audio)
        timeline = client.post("/?timeline=true", content=audio)
        streamed = client.post("/stream?windows=true", content=audio)
    assert answer.status_code == 200 and [entry["score"] for entry in answer.json()] == [None] * len(LABELS), \
        answer.text
    assert timeline.status_code == 200, timeline.text
    assert {score for window in timeline.json()["windows"] for score in window["scores"]} == {None}
    lines = [strict_json(line) for line in streamed.text.splitlines() if line.strip()]
    assert streamed.status_code == 200 and lines, streamed.text
    assert all(score is None for line in lines for score in line.get("scores", [])), streamed.text


def test_predict_to_stdout_ends_with_the_count_of_files_it_could_not_read(model, clips, tmp_path, capsys):
    """With --output FILE the run closes with its counts; to stdout 500 bad files were 500 error lines and no total."""
    missing = str(tmp_path / "gone.wav")
    code, out, err = run_cli_output(["predict", str(model), clips[0], missing, "--json"], capsys)
    assert code == 1 and len(out.splitlines()) == 1, err
    assert err.strip().splitlines()[-1] == "1 of 2 files could not be read or decoded (each named above)", err


def test_a_timeline_of_nan_scores_is_written_with_nulls_not_a_crash(nan_model, clips, tmp_path, capsys):
    """`WindowResult.to_dict` made a NaN score None, and the timeline CSV formatted it with `:.6f`: a TypeError
    traceback, no timeline (it had been written with NaN before)."""
    code, _, err = run_cli_output(["predict", str(nan_model), clips[0], "--timeline", str(tmp_path / "t")], capsys)
    assert code == 0, err
    document = strict_json((tmp_path / "t" / "low.timeline.json").read_text())
    assert {score for row in document["scores"] for score in row} == {None}
    rows = (tmp_path / "t" / "low.timeline.csv").read_text().splitlines()
    assert len(rows) > 1 and rows[1].split(",")[3] == "", rows[:2]


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh)")
def test_the_web_page_shows_a_null_score_as_a_dash_and_draws_the_rest(nan_model, clips):
    """Once the server answered null for NaN scores, the page's `null.toFixed` threw: no bars, no timeline, no
    error shown (it had said HTTP 500 before)."""
    from playwright.sync_api import expect, sync_playwright

    from test_multilabel_answers31 import served

    with served(nan_model) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#file", clips[0])
        expect(page.locator("#timeline-section")).to_be_visible()
        # a dash, hidden from screen readers, and "no score" for them, hidden from the eye (session 39)
        assert page.locator("#result .score").all_text_contents() == ["–no score"] * len(LABELS)
        browser.close()
