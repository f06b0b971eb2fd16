"""What a staged card says of its own model: no local start in its description, generated training data said to be
generated (and the rate it was made at), what transformers' pipeline snippet scores of a long clip (the snippet run
against the staged folder), and a manifest given as `--eval_dir` called a manifest."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import TINY_CNN, TONE_CLASSES, save_random_baseline, synth_clip, write_csv_manifest

LABELS = list(TONE_CLASSES)


def random_run(folder: Path, **config_values) -> Path:
    return save_random_baseline(folder, "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8], **config_values)


def write_json(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record), encoding="utf-8")


def staged_text(repo: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(repo.rglob("*")) if p.suffix in (".md", ".json"))


@pytest.mark.parametrize("start", ["deleted since", "a probe of whisper-tiny.en"])
def test_a_relative_local_start_is_never_published(tmp_path, start):
    """The description said "fine-tuned from runs/probe" (training records the start as typed; run_inputs.json holds
    it absolute), and training_hyperparameters.json published `runs/probe` as it was: a local start is published by
    its folder name, as one that is still there was."""
    from hfspeech.hub import stage_run

    if start != "deleted since":
        probe = random_run(tmp_path / "runs" / "probe")
        write_json(probe / "training_hyperparameters.json", {"model_name_or_path": "whisper-tiny.en"})
    run = random_run(tmp_path / "runD")
    write_json(run / "training_hyperparameters.json", {"model_name_or_path": "runs/probe"})
    write_json(run / "run_inputs.json", {"model_name_or_path": str(tmp_path / "runs" / "probe"), "data": {}})
    stage_run(run, tmp_path / "repo")
    card = (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")
    said = "fine-tuned from local checkpoint `probe`" + (", itself trained from openai/whisper-tiny.en"
                                                           if start != "deleted since" else ")")
    assert said in card, card[:600]
    assert "runs/probe" not in staged_text(tmp_path / "repo")


@pytest.fixture(scope="module")
def keyword_run(tmp_path_factory) -> Path:
    """A CNN trained on espeak-ng keywords generated at 8 kHz (the model's rate is 16 kHz)."""
    from hfspeech.synthetic.spoken import generate_keyword_dataset
    from hfspeech.training.run import main

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("keywords")
    data = generate_keyword_dataset(root / "data", keywords=["yes", "no"], clips_per_keyword=6, sampling_rate=8000)
    main(["--data_dir", str(data), "--output_dir", str(root / "run"), "--model_type", "cnn", "--config_overrides",
          TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--max_length_seconds", "1",
          "--seed", "0", "--save_total_limit", "1"])
    return root / "run"


def test_generated_training_data_is_said_to_be_synthetic_and_resampled(keyword_run, trained_cnn, tmp_path):
    from hfspeech.hub import stage_run

    stage_run(keyword_run, tmp_path / "repo")
    card = (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")
    data_section = card.split("## Training data")[1].split("##")[0]
    assert re.search(r"The clips are synthetic: speech synthesised by espeak-ng \d+\.\d+ through hfspeech's keyword "
                     r"generator \(`hfspeech demo-data`\), not recordings, generated at 8000 Hz and resampled to the "
                     r"model's 16000 Hz\.", data_section), data_section
    assert "/usr/" not in card  # espeak-ng's version line names its data folder
    stage_run(trained_cnn, tmp_path / "tones")  # a folder no generator of hfspeech's wrote: no claim
    assert "synthetic" not in (tmp_path / "tones" / "README.md").read_text(encoding="utf-8")


def test_a_generated_manifest_edited_since_training_is_not_said_to_be_generated(tmp_path):
    """(A real run on a generated manifest, carded synthetic: test_card_data43.)"""
    from hfspeech.hub import stage_run
    from hfspeech.synthetic.events import generate_event_dataset

    data = generate_event_dataset(tmp_path / "events", num_clips=4, sampling_rate=16000)
    manifest = data / "labels.csv"
    run = random_run(tmp_path / "run")
    write_json(run / "run_inputs.json", {"data": {"train_file": str(manifest)}, "data_listings": {
        "train_file": hashlib.sha1(manifest.read_bytes()).hexdigest()}})  # as training records a manifest
    manifest.write_text(manifest.read_text(encoding="utf-8") + "mine.wav,hum\n", encoding="utf-8")  # other data now
    stage_run(run, tmp_path / "repo")
    assert "synthetic" not in (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")


def long_clip(path: Path, first: str, rest: str, seconds: float = 3.0) -> Path:
    """One second of the `first` tone class, then `rest` up to `seconds`, at 16 kHz."""
    rng = np.random.default_rng(0)
    sf.write(path, np.concatenate([synth_clip(first, rng, 16000, 1.0), synth_clip(rest, rng, 16000, seconds - 1)]),
             16000)
    return path


def run_pipeline_snippet(repo: Path, clip: Path) -> list[dict]:
    """The card's transformers snippet as a user runs it, the staged folder for the repo id."""
    card = (repo / "README.md").read_text(encoding="utf-8")
    snippet = card.split("With transformers alone")[1].split("```python\n")[1].split("```")[0]
    printed = []
    exec(snippet.replace('"your-name/repo"', repr(str(repo))).replace('"clip.wav"', repr(str(clip))),
         {"print": printed.append})
    return printed[0]


def test_the_pipeline_snippet_says_it_scores_one_window_of_a_long_clip(tmp_path):
    """A Whisper fine-tune of 1-s crops: its extractor cuts a clip to 1 s, so the snippet scores the first second
    only, while `hfspeech predict` scores the whole clip; the card said nothing of it."""
    from hfspeech.hub import stage_run
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    run = save_tiny_ssl_model(str(tmp_path / "whisper"), "whisper", labels=LABELS, max_source_positions=50,
                              init_std=0.5)
    stage_run(run, tmp_path / "repo", repo_id="your-name/repo")
    card = (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")
    assert ("The pipeline scores one window, the first 1 s of a clip: its feature extractor cuts off the rest. "
            "`hfspeech predict` (below) scores a longer clip in overlapping windows over the whole of it.") in card
    whole = run_pipeline_snippet(tmp_path / "repo", long_clip(tmp_path / "long.wav", "low", "high"))
    first = run_pipeline_snippet(tmp_path / "repo", long_clip(tmp_path / "first.wav", "low", "high", seconds=1.0))
    assert whole == first  # what the card says: the rest of the clip changes nothing


def test_the_pipeline_snippet_of_a_cropped_baseline_says_it_scores_the_clip_whole(tmp_path):
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "run", max_length_seconds=0.5)
    stage_run(run, tmp_path / "repo", repo_id="your-name/repo")
    card = (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")
    assert ("The pipeline scores a clip whole, in one pass, though the model was trained on 0.5-s crops: `hfspeech "
            "predict` (below) scores a longer clip in overlapping 0.5-s windows and by default averages them.") \
        in card
    scores = run_pipeline_snippet(tmp_path / "repo", long_clip(tmp_path / "long.wav", "low", "high"))
    assert [s["label"] for s in scores] and {s["label"] for s in scores} <= set(LABELS)


def test_a_manifest_given_as_eval_dir_is_called_a_manifest(tmp_path):
    """The card read "the `--eval_dir` folder test.csv" and "labelled by their folder names"."""
    from hfspeech.hub import stage_run

    rng = np.random.default_rng(0)
    rows = []
    for label in LABELS:
        sf.write(tmp_path / f"{label}.wav", synth_clip(label, rng, 16000), 16000)
        rows.append({"path": f"{label}.wav", "label": label})
    stage_run(random_run(tmp_path / "run"), tmp_path / "repo", eval_dir=write_csv_manifest(tmp_path / "test.csv", rows))
    card = (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")
    assert "clips of the `--eval_dir` manifest test.csv (its clips" in card
    assert "Measured at staging on 3 clips of an evaluation manifest" in card
    assert "the clips of the manifest given at staging (`--eval_dir`), labelled by its `label` column" in card
