"""A model trained with --trim_silence carries its top_db in its config (`trim_silence_top_db`), and every path
that decodes a whole clip before windowing (predict, `score_waveform` / serve, the exported backends) trims it
the same way; `hfspeech stream` says once that it does not."""

from __future__ import annotations

import json
from pathlib import Path

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
    """`score_waveform` (the API, the pipeline, `hfspeech serve` via `inference.windows.clip_windows`)."""
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(str(tiny_model(tmp_path / "m", trim_silence_top_db=40.0)))
    tone, late = (sf.read(path, dtype="float32")[0] for path in clips)
    from_file = classifier.score_file(str(clips[1])).scores
    assert classifier.score_waveform(late).scores == pytest.approx(from_file, abs=1e-5)
    assert classifier.score_waveform(late).scores == pytest.approx(classifier.score_waveform(tone).scores, abs=SAME)


def test_an_all_silent_file_is_scored_whole_as_training_keeps_it(tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(RATE, np.float32), RATE)
    trimmed = predicted_scores(tiny_model(tmp_path / "trimmed", trim_silence_top_db=40.0), [silent], capsys)
    assert trimmed == predicted_scores(tiny_model(tmp_path / "plain"), [silent], capsys)


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
