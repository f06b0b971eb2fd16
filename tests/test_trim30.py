"""A model trained with --trim_silence carries its top_db in its config (`trim_silence_top_db`), and every path
that decodes a whole clip before windowing (predict, evaluate, `score_waveform`, serve, hfspeech's pipeline, the
exported backends) trims it the same way; `hfspeech stream` says once that it does not, and serve logs it once."""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

from conftest import TINY_CNN, run_cli_output, save_random_baseline, synth_clip, write_tone_folder

RATE = 16000
LABELS = ["low", "high", "noise"]
# librosa's trim keeps the frame before the onset (128 samples of the quiet lead-in), as it did in training:
# measured 0.0055 apart, against 0.40 untrimmed.
SAME = 0.02


def tiny_model(folder: Path, **config_values) -> Path:
    """A random-weight CNN with a 0.5-s window (weights large enough that silence and a tone score apart)."""
    return save_random_baseline(folder, "cnn", LABELS, initializer_range=0.5, max_length_seconds=0.5,
                                **json.loads(TINY_CNN), **config_values)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    """A 0.4-s tone, and the same tone after 1 s of near-silence (-80 dB noise: a quiet room, not digital zero)."""
    folder = tmp_path_factory.mktemp("clips")
    tone = synth_clip("low", np.random.default_rng(0), RATE, seconds=0.4)
    quiet = 1e-4 * np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    sf.write(folder / "tone.wav", tone, RATE, subtype="FLOAT")
    sf.write(folder / "late.wav", np.concatenate([quiet, tone]), RATE, subtype="FLOAT")
    return folder / "tone.wav", folder / "late.wav"


def predicted_scores(model: Path, files, capsys) -> list[dict]:
    """`hfspeech predict --json` rows: {label: score} of every file, in order."""
    code, out, err = run_cli_output(["predict", str(model), *map(str, files), "--json", "--top_k", "3"], capsys)
    assert code == 0, err
    return [{p["label"]: p["score"] for p in json.loads(line)["predictions"]} for line in out.splitlines()]


def test_predict_trims_a_clip_for_a_model_trained_trimmed(tmp_path, clips, capsys):
    trimmed = tiny_model(tmp_path / "trimmed", trim_silence_top_db=40.0)
    plain = tiny_model(tmp_path / "plain")  # same weights (seeded), no attribute: untouched, as before
    tone, late = predicted_scores(trimmed, clips, capsys)
    assert tone == pytest.approx(late, abs=SAME)
    tone, late = predicted_scores(plain, clips, capsys)
    assert max(abs(tone[label] - late[label]) for label in LABELS) > 0.1  # measured: 0.40


def test_window_times_stay_times_in_the_file(tmp_path, clips):
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    windows = classifier.score_file(str(clips[1])).windows
    assert len(windows) == 1 and windows[0].start == pytest.approx(1.0, abs=0.02)  # the tone starts at 1 s
    streamed = list(classifier.iter_windows(str(clips[1])))
    assert [w.start for w in streamed] == [w.start for w in windows]


def test_a_waveform_in_memory_is_trimmed_as_a_file_is(tmp_path, clips):
    """`score_waveform` (the API, and `hfspeech serve` via `inference.windows.clip_windows`)."""
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    tone, late = (sf.read(path, dtype="float32")[0] for path in clips)
    from_file = classifier.score_file(str(clips[1])).scores
    assert classifier.score_waveform(late).scores == pytest.approx(from_file, abs=1e-5)
    assert classifier.score_waveform(late).scores == pytest.approx(classifier.score_waveform(tone).scores, abs=SAME)


def test_a_clip_librosa_would_trim_to_nothing_is_scored_whole(tmp_path, clips, capsys):
    """At top_db 0 no frame is above the threshold (the loudest is at 0 dB, not above it): librosa keeps nothing,
    and `trim_span` keeps the whole clip instead (a clip silent throughout librosa keeps whole by itself)."""
    from hfspeech.data.samples import trim_span

    late = sf.read(clips[1], dtype="float32")[0]
    assert trim_span(late, 0.0) == (0, late.size)
    trimmed = predicted_scores(tiny_model(tmp_path / "trimmed", trim_silence_top_db=0.0), [clips[1]], capsys)
    assert trimmed == predicted_scores(tiny_model(tmp_path / "plain"), [clips[1]], capsys)


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_an_export_trims_as_the_model_it_came_from(tmp_path, clips, capsys, kind):
    """The export folder carries config.json, attribute included: its backend trims as PyTorch does."""
    from hfspeech.export.onnx_export import export_onnx
    from hfspeech.export.torchscript_export import export_torchscript

    if kind == "onnx":
        pytest.importorskip("onnxruntime")
    model = tiny_model(tmp_path / "m", trim_silence_top_db=40.0)
    (export_onnx if kind == "onnx" else export_torchscript)(str(model), str(tmp_path / kind))
    assert json.loads((tmp_path / kind / "config.json").read_text())["trim_silence_top_db"] == 40.0
    tone, late = predicted_scores(tmp_path / kind, clips, capsys)
    assert tone == pytest.approx(late, abs=SAME)


def test_stream_says_once_that_it_does_not_trim(tmp_path, clips, capsys):
    trimmed = tiny_model(tmp_path / "trimmed", trim_silence_top_db=40.0)
    args = [str(clips[1]), "--idle_timeout", "0"]
    code, _, err = run_cli_output(["stream", str(trimmed), "--follow", *args], capsys)
    assert code == 0 and err.count("trimmed of silence") == 1, err
    code, _, err = run_cli_output(["stream", str(tiny_model(tmp_path / "plain")), "--follow", *args], capsys)
    assert code == 0 and "trimmed" not in err, err


def test_build_model_records_the_trim_and_drops_a_checkpoints(tmp_path):
    """A fine-tune of a trimmed model without --trim_silence must not inherit the attribute."""
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import build_model

    arguments = ModelArguments(model_type="cnn", config_overrides=TINY_CNN)
    model, _ = build_model(arguments, LABELS, max_length_seconds=0.5, trim_top_db=30.0)
    assert model.config.trim_silence_top_db == 30.0
    checkpoint = tiny_model(tmp_path / "trimmed", trim_silence_top_db=40.0)
    tuned, _ = build_model(ModelArguments(model_name_or_path=str(checkpoint)), LABELS, max_length_seconds=0.5)
    assert "trim_silence_top_db" not in tuned.config.to_dict()


def test_a_run_trained_with_trim_silence_writes_it_in_its_config(tmp_path):
    from hfspeech.training.run import main

    data = write_tone_folder(tmp_path / "data", clips_per_class=4, rates=(RATE,))
    output = tmp_path / "run"
    main(["--data_dir", str(data), "--output_dir", str(output), "--model_type", "cnn", "--config_overrides",
          TINY_CNN, "--num_train_epochs", "1", "--max_length_seconds", "0.5", "--trim_silence", "--trim_top_db", "35",
          "--save_strategy", "no", "--seed", "0"])
    assert json.loads((output / "config.json").read_text())["trim_silence_top_db"] == 35.0


def pipeline_scores(classify, clip) -> dict:
    return {result["label"]: result["score"] for result in classify(clip, top_k=3)}


def test_the_pipeline_trims_arrays_paths_and_bytes(tmp_path, clips):
    from hfspeech.inference.pipeline import audio_classification_pipeline

    tone, late = clips
    classify = audio_classification_pipeline(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    expected = pipeline_scores(classify, str(tone))
    array = sf.read(late, dtype="float32")[0]
    for given in (str(late), late.read_bytes(), {"raw": array, "sampling_rate": RATE}, array):
        assert pipeline_scores(classify, given) == pytest.approx(expected, abs=SAME)
    plain = audio_classification_pipeline(str(tiny_model(tmp_path / "plain")))  # untouched, as before
    apart = pipeline_scores(plain, str(late)), pipeline_scores(plain, str(tone))
    assert max(abs(apart[0][label] - apart[1][label]) for label in LABELS) > 0.1


def test_a_staged_card_says_transformers_pipeline_does_not_trim(tmp_path):
    from hfspeech.hub import stage_run

    for name, values in (("trimmed", {"trim_silence_top_db": 35.0}), ("plain", {})):
        run = tiny_model(tmp_path / name, **values)
        (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "num_test_clips": 6}))
        stage_run(run, tmp_path / f"staged_{name}", repo_id="someone/model")
    card = " ".join((tmp_path / "staged_trimmed" / "README.md").read_text().split())
    assert "transformers' own `pipeline` does not: trim clips first" in card and "top_db=35.0," in card
    assert "trimmed of leading" not in (tmp_path / "staged_plain" / "README.md").read_text()


@contextmanager
def trim_passes() -> Iterator[list[tuple[str, bool]]]:
    """For each trim measured (`TrimMeter.span`, after the frame-level pass): its thread, and whether on an event loop."""
    import asyncio

    from hfspeech.data.samples import TrimMeter

    span, passes = TrimMeter.span, []

    def watched(*args, **kwargs):
        try:
            on_loop = asyncio.get_running_loop() is not None
        except RuntimeError:
            on_loop = False
        passes.append((threading.current_thread().name, on_loop))
        return span(*args, **kwargs)

    TrimMeter.span = watched
    try:
        yield passes
    finally:
        TrimMeter.span = span


def served(model: Path, audio: bytes, caplog) -> tuple[list, list[bool]]:
    """`hfspeech serve`'s answer to an upload, and for each trim pass whether it ran on the event loop."""
    import asyncio

    from hfspeech.serve.payload import Parameters
    from hfspeech.serve.runner import ModelRunner

    runner = ModelRunner(str(model))

    async def classify():
        runner.start_loading()
        try:
            return await runner.classify(audio, Parameters(top_k=3))
        finally:
            await runner.batcher.stop()

    caplog.set_level(logging.INFO, logger="uvicorn.error")
    with trim_passes() as passes:
        answer = asyncio.run(classify())
    return answer, [on_loop for _, on_loop in passes]


def test_serve_trims_an_upload_off_the_event_loop(tmp_path, clips, caplog):
    answer, on_loop = served(tiny_model(tmp_path / "m", trim_silence_top_db=40.0), clips[1].read_bytes(), caplog)
    assert on_loop and not any(on_loop)
    tone, _ = served(tiny_model(tmp_path / "m", trim_silence_top_db=40.0), clips[0].read_bytes(), caplog)
    assert {a["label"]: a["score"] for a in answer} == pytest.approx({a["label"]: a["score"] for a in tone}, abs=SAME)


def test_serve_logs_once_that_its_stream_is_not_trimmed(tmp_path, clips, caplog):
    served(tiny_model(tmp_path / "trimmed", trim_silence_top_db=40.0), clips[0].read_bytes(), caplog)
    assert caplog.text.count("a stream is not trimmed") == 1, caplog.text
    caplog.clear()
    served(tiny_model(tmp_path / "plain"), clips[0].read_bytes(), caplog)
    assert "trimmed" not in caplog.text, caplog.text


def test_evaluate_says_its_trim_flag_is_not_applied(tmp_path, capsys):
    data = write_tone_folder(tmp_path / "data", clips_per_class=1, rates=(RATE,))
    model = tiny_model(tmp_path / "m", trim_silence_top_db=40.0)
    code, _, err = run_cli_output(["evaluate", str(model), "--data_dir", str(data), "--trim_silence", "--trim_top_db",
                                   "20", "--output_dir", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert err.count("--trim_silence (--trim_top_db 20) is not applied") == 1 and "(--trim_top_db 40)" in err, err
