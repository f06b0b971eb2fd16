"""Whisper pooling over the clip's own frames (`WhisperClipPoolingForAudioClassification`).

The mean leaves out the silence Whisper pads a clip with: each clip's logits are the head on the mean of the
frames that cover it, the same alone or in a batch, whether the mask comes per mel frame (hfspeech) or per
sample (plain transformers). It reloads through the Auto classes, the frozen-feature cache gives its live
logits, it exports to ONNX and TorchScript within 1e-4, a staged repo runs without hfspeech, and the recipe
trains one from the real tiny.en with a window longer than the crop.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (AutoFeatureExtractor, AutoModelForAudioClassification, WhisperFeatureExtractor,
                          WhisperForAudioClassification)

from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models import register
from hfspeech.models.config_json import METRICS_FILE
from hfspeech.models.frozen import encode_for_head, head_logits
from hfspeech.models.inputs import extract_features
from hfspeech.models.whisper import prepare_whisper_classifier
from hfspeech.models.whisper.configuration_clip_pooling import WhisperClipPoolingConfig
from hfspeech.models.whisper.modeling_clip_pooling import WhisperClipPoolingForAudioClassification
from hfspeech.synthetic.tiny import TINY_WHISPER_CONFIG
from tests.conftest import synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")
SAMPLES_PER_FRAME = 320  # an encoder frame: two mel frames of 160 samples at 16 kHz


def tiny_model(weighted: bool = False, seed: int = 0) -> tuple[WhisperClipPoolingForAudioClassification, object]:
    """A random tiny model for 1-s clips in a 2-s window, with a head whose logits differ well beyond noise."""
    register()
    torch.manual_seed(seed)
    config = WhisperClipPoolingConfig(**TINY_WHISPER_CONFIG, num_labels=3, use_weighted_layer_sum=weighted,
                                      max_source_positions=1500)
    model = WhisperClipPoolingForAudioClassification(config).eval()
    extractor, clip_seconds = prepare_whisper_classifier(model, WhisperFeatureExtractor(), 1.0, window_seconds=2)
    model.config.max_length_seconds = clip_seconds
    with torch.no_grad():
        model.classifier.weight.normal_(0, 2.0)
    return model, extractor


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synth_clip(kind, rng, 16000, seconds) for kind, seconds in (("low", 1.0), ("high", 0.6), ("noise", 0.25))]


@pytest.mark.parametrize("weighted", [False, True])
def test_the_mean_covers_each_clips_frames_only(weighted):
    model, extractor = tiny_model(weighted)
    assert model.config.max_source_positions == 100 and extractor.nb_max_frames == 200
    batch = extract_features(extractor, clips())
    assert batch["attention_mask"].shape == (3, 200)  # per mel frame
    with torch.no_grad():
        logits = model(**batch).logits
        outputs = model.encoder(batch["input_features"], output_hidden_states=True)
        states = (torch.stack(outputs.hidden_states, 1) * torch.softmax(model.layer_weights, -1).view(-1, 1, 1)).sum(1) \
            if weighted else outputs.last_hidden_state
        frames = [math.ceil(len(clip) / SAMPLES_PER_FRAME) for clip in clips()]
        by_hand = torch.stack([model.classifier(model.projector(states[i, :n]).mean(0)) for i, n in enumerate(frames)])
        torch.testing.assert_close(logits, by_hand, atol=1e-5, rtol=0)
        alone = torch.cat([model(**extract_features(extractor, [clip])).logits for clip in clips()])
        torch.testing.assert_close(logits, alone, atol=1e-5, rtol=0)
        per_sample = extractor(clips(), sampling_rate=16000, padding="max_length", return_tensors="pt")
        assert per_sample["attention_mask"].shape == (3, 32000)  # what a plain extractor call returns
        torch.testing.assert_close(model(**per_sample).logits, logits, atol=1e-6, rtol=0)
        whole_window = WhisperForAudioClassification(model.config).eval()
        whole_window.load_state_dict(model.state_dict())
        assert (whole_window(batch["input_features"]).logits - logits).abs().max() > 1e-2


def test_saved_model_reloads_and_the_cache_gives_its_logits(tmp_path):
    model, extractor = tiny_model(weighted=True)
    model.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    reloaded = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is WhisperClipPoolingForAudioClassification
    saved_extractor = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert saved_extractor.return_attention_mask and saved_extractor.nb_max_frames == 200
    batch = extract_features(saved_extractor, clips(1))
    with torch.no_grad():
        live = model(**batch).logits
        torch.testing.assert_close(reloaded(**batch).logits, live)
        cached = torch.from_numpy(np.stack(encode_for_head(reloaded, batch)))
        assert cached.shape == (3, TINY_WHISPER_CONFIG["encoder_layers"] + 1, TINY_WHISPER_CONFIG["d_model"])
        torch.testing.assert_close(head_logits(reloaded, cached), live, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip-pooling") / "model"
    model, extractor = tiny_model(seed=1)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported_run(model_folder, tmp_path_factory) -> Path:
    """A copy of the model folder with its ONNX export in run/onnx (`export_onnx(run)`), made once for the two
    tests that read it."""
    from hfspeech.export import export_onnx

    run = tmp_path_factory.mktemp("clip-pooling-onnx") / "run"
    shutil.copytree(model_folder, run)
    export_onnx(run)
    return run


def test_exports_to_onnx_and_torchscript(model_folder, exported_run, tmp_path):
    from hfspeech.export import export_torchscript

    expected = AudioClassifier.from_pretrained(str(model_folder), device=torch.device("cpu")).logits(clips(2))
    assert np.ptp(expected) > 1e-2
    onnx_file = exported_run / "onnx" / "model.onnx"
    onnx = AudioClassifier.from_pretrained(str(onnx_file))
    assert set(onnx.backend.input_types) == {"input_features", "attention_mask"}
    np.testing.assert_allclose(onnx.logits(clips(2)), expected, atol=1e-4, rtol=0)
    traced = AudioClassifier.from_pretrained(str(export_torchscript(model_folder, tmp_path / "ts")))
    np.testing.assert_allclose(traced.logits(clips(2)), expected, atol=1e-4, rtol=0)


STAGED_USE = """
import json
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
model = AutoModelForAudioClassification.from_pretrained({repo!r}, trust_remote_code=True).eval()
extractor = AutoFeatureExtractor.from_pretrained({repo!r})
clips = [np.load({clips!r})[f"arr_{{i}}"] for i in range(3)]
with torch.no_grad():
    logits = model(**extractor(clips, sampling_rate=16000, return_tensors="pt")).logits
print("RESULT" + json.dumps([type(model).__module__, logits.tolist()]))
"""


def test_staged_repo_runs_without_hfspeech(model_folder, tmp_path):
    from hfspeech.hub import stage_run
    from test_hub import run_python_without_hfspeech

    stage_run(model_folder, tmp_path / "repo", repo_id="someone/clips")
    np.savez(tmp_path / "clips.npz", *clips(3))
    stdout = run_python_without_hfspeech(
        STAGED_USE.format(repo=str(tmp_path / "repo"), clips=str(tmp_path / "clips.npz")), tmp_path)
    module, logits = json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT"))[6:])
    assert module.startswith("transformers_modules")
    expected = AudioClassifier.from_pretrained(str(model_folder), device=torch.device("cpu")).logits(clips(3))
    np.testing.assert_allclose(np.array(logits), expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def probe_run(whisper_tiny_en, tone_folder, tmp_path_factory) -> Path:
    """The real tiny.en probed through the recipe with clip pooling in a 2-s window (a 0.5-s crop)."""
    from hfspeech.training.run import main

    run = tmp_path_factory.mktemp("clip-pooling-probe") / "run"
    main(["--model_name_or_path", "whisper-tiny.en", "--pool_clip_frames", "--whisper_window_seconds", "2",
          "--freeze_base_model", "--data_dir", str(tone_folder), "--output_dir", str(run),
          "--max_length_seconds", "0.5", "--num_train_epochs", "3", "--learning_rate", "5e-3",
          "--per_device_train_batch_size", "16", "--save_total_limit", "1"])
    return run


def test_recipe_probes_real_tiny_en_in_a_longer_window(probe_run):
    run = probe_run
    config = json.loads((run / "config.json").read_text())
    assert (config["model_type"], config["max_source_positions"], config["max_length_seconds"]) == \
        ("whisper-clip-pooling", 100, 1)
    assert json.loads((run / "preprocessor_config.json").read_text())["return_attention_mask"] is True
    metrics = json.loads((run / METRICS_FILE).read_text())
    assert metrics["eval_accuracy"] >= 0.8 and metrics["test_accuracy"] > 0.4, metrics  # three tones; chance 1/3
    classifier = AudioClassifier.from_pretrained(str(run), device=torch.device("cpu"))
    clip = synth_clip("high", np.random.default_rng(9), 16000, 0.5)
    assert classifier.logits([clip]).shape == (1, 3)


def windows_of(run: Path) -> tuple[int, int]:
    config = json.loads((run / "config.json").read_text())
    return config["max_source_positions"], json.loads((run / "preprocessor_config.json").read_text())["nb_max_frames"]


def test_the_window_defaults_to_the_crop_and_a_saved_run_keeps_its_own(whisper_tiny_en, tone_folder, probe_run,
                                                                       tmp_path):
    """Without --whisper_window_seconds a Whisper checkpoint gets the crop rounded up (not its 30 s); training
    on from a saved run (LP-FT from a probe, the 2-s window one) keeps the run's longer window."""
    from hfspeech.training.run import main

    common = ["--data_dir", str(tone_folder), "--max_length_seconds", "0.5", "--num_train_epochs", "1",
              "--per_device_train_batch_size", "16", "--save_total_limit", "1", "--max_train_samples", "16"]
    main(["--model_name_or_path", "whisper-tiny.en", "--pool_clip_frames", "--freeze_base_model",
          "--output_dir", str(tmp_path / "default"), *common])
    assert windows_of(tmp_path / "default") == (50, 100)
    assert windows_of(probe_run) == (100, 200)
    main(["--model_name_or_path", str(probe_run), "--output_dir", str(tmp_path / "on"), *common])
    assert windows_of(tmp_path / "on") == (100, 200)
    assert json.loads((tmp_path / "on" / "config.json").read_text())["model_type"] == "whisper-clip-pooling"


@pytest.mark.parametrize("flags, message", [
    (["--whisper_window_seconds", "1"], "a 1-s window cannot hold 1.5-s clips"),
    (["--score_label_words"], "drop --pool_clip_frames"),
])
def test_clip_pooling_refuses_what_it_cannot_do(whisper_tiny_en, tone_folder, tmp_path, flags, message):
    from hfspeech.training.run import main

    with pytest.raises(UsageError, match=message):
        main(["--model_name_or_path", str(whisper_tiny_en), "--pool_clip_frames", "--data_dir", str(tone_folder),
              "--output_dir", str(tmp_path), "--max_length_seconds", "1.5", *flags])


def test_clip_pooling_needs_a_whisper_checkpoint(tone_folder, tmp_path):
    from hfspeech.training.run import main

    with pytest.raises(UsageError, match="^--pool_clip_frames: for Whisper checkpoints"):
        main(["--model_type", "cnn", "--pool_clip_frames", "--data_dir", str(tone_folder),
              "--output_dir", str(tmp_path)])


def test_staged_onnx_runs_as_its_card_says(model_folder, exported_run, tmp_path):
    """The card's onnxruntime snippet for a model whose graph takes its extractor's output (not a baseline's
    raw-audio graph): log-mel window and per-mel-frame mask in, the PyTorch logits out."""
    import re

    import soundfile as sf

    from hfspeech.hub import stage_run

    repo = tmp_path / "repo"
    stage_run(exported_run, repo, repo_id="someone/clips", include_onnx=True)
    snippet = re.findall(r"```python\n(.*?)```", (repo / "README.md").read_text(), re.S)[-1]
    assert "AutoFeatureExtractor" in snippet
    clip = clips(4)[1]
    sf.write(tmp_path / "clip.wav", clip, 16000, subtype="FLOAT")
    snippet = snippet.replace('hf_hub_download("someone/clips", "onnx/model.onnx")', repr(str(repo / "onnx" / "model.onnx")))
    scope: dict = {}
    exec(snippet.replace('"someone/clips"', repr(str(repo))).replace("clip.wav", str(tmp_path / "clip.wav")), scope)
    expected = AudioClassifier.from_pretrained(str(model_folder), device=torch.device("cpu")).logits([clip])
    np.testing.assert_allclose(scope["logits"], expected, atol=1e-4, rtol=0)
