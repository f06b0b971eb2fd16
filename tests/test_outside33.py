"""Follow-ups of the outside-checkpoint and families audits (session 33): a group-norm encoder whose extractor returns
a mask is still batched by equal length; the window of a checkpoint without `max_length_seconds` comes from its
extractor; train-time evaluation, the test pass and a live teacher batch such models by equal length, as `predict`
does; a multi-label checkpoint fine-tuned single-label says so. Tiny random checkpoints."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import (ASTFeatureExtractor, AutoFeatureExtractor, AutoModelForAudioClassification,
                          TrainingArguments, WhisperConfig, WhisperFeatureExtractor)

from hfspeech.data.transforms import AudioClassificationCollator, EvalTransform, TransformedSplit
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.inputs import window_seconds_of
from hfspeech.synthetic.tiny import GROUP_NORM_FEATURE_ENCODER, save_tiny_ssl_model
from hfspeech.training.arguments import ModelArguments
from hfspeech.training.live_teacher import LiveTeacher
from hfspeech.training.model_setup import build_model
from hfspeech.training.trainer import AudioClassificationTrainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
LABELS = ["a", "b", "c"]
LENGTHS = [16000, 5001, 9137, 3200, 5001]  # at 16 kHz; two of one length


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    tone = np.sin(2 * np.pi * 440 * np.arange(max(LENGTHS)) / 16000)
    return [(0.3 * tone[:n] + 0.1 * rng.standard_normal(n)).astype(np.float32) for n in LENGTHS]


@pytest.fixture(scope="module")
def group_norm(tmp_path_factory):
    """A wav2vec2-base style checkpoint (group-norm feature encoder), its extractor returning no mask."""
    return save_tiny_ssl_model(str(tmp_path_factory.mktemp("group")), labels=LABELS, initializer_range=0.5,
                               **GROUP_NORM_FEATURE_ENCODER)


def alone(folder, waveforms) -> np.ndarray:
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    with torch.no_grad():
        return np.concatenate([model(**extractor([w], sampling_rate=16000, return_tensors="pt")).logits.numpy()
                               for w in waveforms])


def test_group_norm_model_whose_extractor_returns_a_mask_is_batched_by_equal_length(group_norm, tmp_path):
    """The Hub's or a user's `return_attention_mask: true` on a group-norm model: each clip scores as alone."""
    folder = tmp_path / "with_mask"
    AutoModelForAudioClassification.from_pretrained(group_norm).save_pretrained(folder)
    extractor = AutoFeatureExtractor.from_pretrained(group_norm)
    extractor.return_attention_mask = True
    extractor.save_pretrained(folder)
    waveforms = clips()
    batched = AudioClassifier.from_pretrained(str(folder), batch_size=8).logits(waveforms)
    np.testing.assert_allclose(batched, alone(folder, waveforms), atol=1e-4)


@pytest.mark.parametrize("extractor", [WhisperFeatureExtractor(feature_size=80, chunk_length=30),
                                       WhisperFeatureExtractor(feature_size=80, chunk_length=8),
                                       ASTFeatureExtractor(max_length=1024), ASTFeatureExtractor(max_length=300)])
def test_window_of_a_checkpoint_made_elsewhere_is_its_extractors_input_length(extractor):
    config = WhisperConfig()  # no max_length_seconds, as transformers saves one
    window = window_seconds_of(config, extractor)
    if isinstance(extractor, WhisperFeatureExtractor):
        assert window == extractor.n_samples / extractor.sampling_rate
    else:  # within 20 ms of the longest clip whose 25-ms frames, every 10 ms, all fit in max_length
        def frames(seconds: float) -> int:
            return 1 + (int(round(seconds * 16000)) - 400) // 160
        assert frames(window) <= extractor.max_length < frames(window + 0.02)
    config.max_length_seconds = 2.0  # hfspeech's own record wins
    assert window_seconds_of(config, extractor) == 2.0


def eval_view(waveforms) -> TransformedSplit:
    split = Dataset.from_dict({"input_values": waveforms, "length": [len(w) for w in waveforms],
                               "label": [i % len(LABELS) for i in range(len(waveforms))]})
    return TransformedSplit(split, EvalTransform(None))


def test_test_pass_of_a_group_norm_model_scores_each_clip_as_alone(group_norm, tmp_path):
    """Mixed lengths went through the collator's padding: test_* metrics were not `hfspeech evaluate`'s."""
    model = AutoModelForAudioClassification.from_pretrained(group_norm).eval()
    extractor = AutoFeatureExtractor.from_pretrained(group_norm)
    args = TrainingArguments(str(tmp_path / "run"), per_device_eval_batch_size=8, report_to=[], use_cpu=True)
    trainer = AudioClassificationTrainer(model=model, args=args, processing_class=extractor,
                                         data_collator=AudioClassificationCollator(extractor, len(LABELS)))
    waveforms = clips()
    predictions = trainer.predict(eval_view(waveforms)).predictions
    np.testing.assert_allclose(predictions, alone(group_norm, waveforms), atol=1e-4)


def test_persistent_workers_keep_one_equal_length_loader_per_dataset(group_norm, tmp_path):
    """A new loader at every evaluation started a new pool of persistent workers, the old ones left running until
    collected (review R3); transformers keeps one loader per eval dataset."""
    extractor = AutoFeatureExtractor.from_pretrained(group_norm)
    args = TrainingArguments(str(tmp_path / "run"), per_device_eval_batch_size=8, report_to=[], use_cpu=True,
                             dataloader_num_workers=1, dataloader_persistent_workers=True)
    trainer = AudioClassificationTrainer(model=AutoModelForAudioClassification.from_pretrained(group_norm), args=args,
                                         processing_class=extractor,
                                         data_collator=AudioClassificationCollator(extractor, len(LABELS)))
    view = eval_view(clips())
    assert trainer.get_eval_dataloader(view) is trainer.get_eval_dataloader(view)
    assert trainer.get_eval_dataloader(eval_view(clips())) is not trainer.get_eval_dataloader(view)


def test_models_that_share_padded_batches_keep_the_trainers_loader(tmp_path):
    """A layer-norm wav2vec2 with its mask: its test batches stay the Trainer's own, consecutive clips."""
    folder = save_tiny_ssl_model(str(tmp_path / "layer"), labels=LABELS)
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    args = TrainingArguments(str(tmp_path / "run"), per_device_eval_batch_size=2, report_to=[], use_cpu=True)
    trainer = AudioClassificationTrainer(model=AutoModelForAudioClassification.from_pretrained(folder), args=args,
                                         processing_class=extractor,
                                         data_collator=AudioClassificationCollator(extractor, len(LABELS)))
    assert list(trainer.get_test_dataloader(eval_view(clips())).batch_sampler) == [[0, 1], [2, 3], [4]]


def test_live_teacher_scores_each_crop_as_alone(group_norm):
    teacher = LiveTeacher(str(group_norm), LABELS, 16000)
    waveforms = clips(1)
    np.testing.assert_allclose(teacher.logits_of(waveforms).numpy(), alone(group_norm, waveforms), atol=1e-4)


def test_multi_label_checkpoint_fine_tuned_single_label_says_so(tmp_path, caplog):
    folder = save_tiny_ssl_model(str(tmp_path / "multi"), labels=LABELS, problem_type="multi_label_classification")
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        model, _ = build_model(ModelArguments(model_name_or_path=str(folder)), LABELS)
    assert model.config.problem_type == "single_label_classification"
    assert any("multi_label_classification checkpoint" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):  # the checkpoint's own kind: nothing to say
        build_model(ModelArguments(model_name_or_path=str(folder), problem_type="multi_label_classification"), LABELS)
    assert not any("checkpoint; this run trains" in record.getMessage() for record in caplog.records)


def test_int8_calibration_of_an_outside_whisper_cuts_its_extractors_window(tmp_path):
    """A 12-s clip calibrating a Whisper with an 8-s window (no `max_length_seconds`): the centre 8 s, not 10."""
    import onnx
    import soundfile as sf
    from onnx import TensorProto, helper

    from hfspeech.export.quantization import calibration_dataset

    model_dir, audio_dir = tmp_path / "model", tmp_path / "audio"
    audio_dir.mkdir()
    WhisperConfig(num_mel_bins=80).save_pretrained(model_dir)
    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=8)
    extractor.save_pretrained(model_dir)
    graph = helper.make_graph([helper.make_node("Identity", ["input_features"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input_features", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph), str(model_dir / "model.onnx"))
    clip = np.random.default_rng(0).standard_normal(12 * 16000).astype(np.float32) * np.linspace(0, 1, 12 * 16000)
    sf.write(audio_dir / "long.wav", clip, 16000, subtype="FLOAT")
    rows = calibration_dataset(audio_dir, model_dir / "model.onnx")
    centre = extractor(clip[2 * 16000 : 10 * 16000], sampling_rate=16000, return_tensors="np")["input_features"][0]
    np.testing.assert_allclose(rows["input_features"][0], centre, atol=1e-4)


def test_predicts_window_of_an_outside_whisper_is_its_extractors():
    """`hfspeech predict`/`evaluate`/`serve` cut files by `AudioClassifier.window_seconds`: it was hfspeech's 10-s
    default for an outside Whisper, whose pipeline classifies a 12-s clip whole (2 windows averaged here)."""
    from types import SimpleNamespace

    from hfspeech.inference.classifier import AudioClassifier

    backend = SimpleNamespace(config=WhisperConfig(id2label={0: "a", 1: "b"}), logits=lambda inputs: None, name="x")
    classifier = AudioClassifier(backend, WhisperFeatureExtractor(feature_size=80, chunk_length=30))
    assert classifier.window_seconds == 30.0


def test_the_card_of_a_checkpoint_made_elsewhere_says_so_and_names_its_extractors_window(tmp_path, capsys):
    """A folder with no hfspeech training record (transformers' own save, here `hfspeech tiny-model`'s) was carded
    "trained with hfspeech" and "about a few s, the crop length it was trained on"."""
    from tests.conftest import run_cli_output

    model, dest = tmp_path / "whisper", tmp_path / "staged"
    assert run_cli_output(["tiny-model", str(model), "--model_type", "whisper"], capsys)[0] == 0
    (model / "trainer_state.json").write_text('{"global_step": 10, "log_history": []}')  # any Trainer's (review R3)
    assert run_cli_output(["stage", str(model), str(dest)], capsys)[0] == 0
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert "trained outside hfspeech" in card and "trained with hfspeech" not in card
    assert "up to 30 s, its feature extractor's input length" in card and "crop length" not in card


def test_teacher_logits_cached_before_equal_length_batches_are_not_read_back(tmp_path):
    """The teacher's logits of a model that reads the padding changed with equal-length batches (79ee7cf), but the
    cache key did not: the old batch-dependent logits were read back (review R3). The key holds a format."""
    from datasets import Dataset

    from hfspeech.training import teacher_cache

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    split = Dataset.from_dict({"a": [1, 2]})
    now = teacher_cache.cache_key(str(teacher), split, LABELS)
    teacher_cache.TEACHER_LOGITS_FORMAT -= 1
    try:
        assert teacher_cache.cache_key(str(teacher), split, LABELS) != now
    finally:
        teacher_cache.TEACHER_LOGITS_FORMAT += 1


def test_a_checkpoint_saved_in_bin_shards_is_a_model(tmp_path, capsys):
    """A big checkpoint saved by older transformers comes as pytorch_model-0000k-of-0000n.bin with an index: it was
    refused "no model weights (model.safetensors) in the folder"."""
    import soundfile as sf
    from transformers import AutoModelForAudioClassification

    from hfspeech.models import register
    from tests.conftest import run_cli_output, save_random_baseline, synth_clip

    register()
    model = save_random_baseline(tmp_path / "cnn", "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8])
    sharded = tmp_path / "sharded"
    AutoModelForAudioClassification.from_pretrained(model).save_pretrained(sharded, safe_serialization=False,
                                                                            max_shard_size="1KB")
    (sharded / "preprocessor_config.json").write_bytes((model / "preprocessor_config.json").read_bytes())
    assert (sharded / "pytorch_model.bin.index.json").is_file()
    clip = tmp_path / "a.wav"
    sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000), 16000)
    code, out, err = run_cli_output(["predict", str(sharded), str(clip)], capsys)
    assert code == 0, err
    assert out == run_cli_output(["predict", str(model), str(clip)], capsys)[1]
