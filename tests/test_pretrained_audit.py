"""Fine-tuning pretrained checkpoints behaves as transformers users expect (audit of model set-up and inputs).

- A group-norm Wav2Vec2 (wav2vec2-base style: normalising extractor, no attention mask) gets each clip
  normalised alone and then zero-padded in a training batch, as `predict` (batches of one length) feeds it.
- A checkpoint whose head was trained for the run's labels in another order keeps each label's row.
- AST's crop is at most what its feature extractor keeps (it cuts longer clips without a word).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.data.transforms import AudioClassificationCollator
from hfspeech.models.inputs import extract_features
from hfspeech.synthetic.tiny import GROUP_NORM_FEATURE_ENCODER, save_tiny_ssl_model
from hfspeech.training.arguments import ModelArguments
from hfspeech.training.model_setup import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
LENGTHS = [16000, 4800, 9137]  # 1 s, 0.3 s and an odd length, at 16 kHz


def speech_like_clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(max(LENGTHS)) / 16000
    return [(0.3 * np.sin(2 * np.pi * 220 * t[:n]) + 0.05 * rng.standard_normal(n)).astype(np.float32)
            for n in LENGTHS]


def test_group_norm_batch_normalises_each_clip_alone_then_pads_with_zeros(tmp_path):
    """Before: the extractor normalised each clip over its padded length (zeros in its mean and variance), so a
    0.3-s clip beside a 1-s one reached the model ~1.8x louder than `predict` gives it, and the padding was not 0."""
    folder = save_tiny_ssl_model(tmp_path / "base", "wav2vec2", labels=["a", "b"], **GROUP_NORM_FEATURE_ENCODER)
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    assert extractor.do_normalize and not extractor.return_attention_mask
    clips = speech_like_clips()
    batch = AudioClassificationCollator(extractor)([{"input_values": clip, "label": 0} for clip in clips])
    assert "attention_mask" not in batch and batch["input_values"].shape == (3, max(LENGTHS))
    for row, clip in zip(batch["input_values"], clips):
        alone = extract_features(extractor, [clip])["input_values"][0]  # what predict feeds (one length a batch)
        torch.testing.assert_close(row[: len(clip)], alone, atol=1e-6, rtol=0)
        assert torch.count_nonzero(row[len(clip):]) == 0


def test_layer_norm_extractor_with_a_mask_is_unchanged(tmp_path):
    """A masked extractor (wav2vec2-large, XLS-R) already confines normalisation to the clip: same values as a
    plain transformers call, mask included."""
    folder = save_tiny_ssl_model(tmp_path / "large", "wav2vec2", labels=["a", "b"])
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    clips = speech_like_clips(1)
    ours = extract_features(extractor, clips)
    theirs = extractor(clips, sampling_rate=16000, padding="longest", return_tensors="pt")
    assert set(ours) == {"input_values", "attention_mask"}
    for key in ours:
        assert torch.equal(ours[key], theirs[key])


def _logits(model, extractor, clips) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**extract_features(extractor, clips)).logits


@pytest.mark.parametrize("model_type", ["wav2vec2", "audio-spectrogram-transformer"])
def test_a_head_for_the_same_labels_in_another_order_keeps_each_labels_row(model_type, tmp_path):
    """Before: the run's labels are sorted, a Hub classifier's are in its own order (superb/*-ks: "yes", "no",
    ...): `from_pretrained` kept the rows where they were and the config took the run's names, so every label
    started from another label's row."""
    saved = ["yes", "no", "up"]
    folder = save_tiny_ssl_model(tmp_path / model_type, model_type, labels=saved, initializer_range=0.5)
    original = AutoModelForAudioClassification.from_pretrained(folder)
    model, extractor = build_model(ModelArguments(model_name_or_path=str(folder)), sorted(saved), max_length_seconds=1)
    assert [model.config.id2label[i] for i in range(3)] == ["no", "up", "yes"]
    clips = speech_like_clips(2)
    before = _logits(original, extractor, clips)
    after = _logits(model, extractor, clips)
    assert before.std() > 0.05  # logits that tell the labels apart
    torch.testing.assert_close(after, before[:, [saved.index(name) for name in ["no", "up", "yes"]]])


def test_a_head_for_other_labels_of_the_same_number_is_kept_with_a_warning(tmp_path, caplog):
    folder = save_tiny_ssl_model(tmp_path / "w2v2", "wav2vec2", labels=["yes", "no"])
    original = AutoModelForAudioClassification.from_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        model, _ = build_model(ModelArguments(model_name_or_path=str(folder)), ["cat", "dog"], max_length_seconds=1)
    assert torch.equal(model.classifier.weight, original.classifier.weight)
    assert "trained for the labels ['yes', 'no']" in caplog.text


def test_ast_crop_is_at_most_what_its_feature_extractor_keeps(tmp_path, caplog):
    """Before: a 2-s crop with an AST whose extractor keeps 64 frames (0.655 s) trained on the first 0.655 s of
    each crop and `predict` windowed long files every 2 s, 1.3 s of each window never heard."""
    folder = save_tiny_ssl_model(tmp_path / "ast", "audio-spectrogram-transformer", labels=["a", "b"])
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        model, extractor = build_model(ModelArguments(model_name_or_path=str(folder)), ["a", "b"],
                                       max_length_seconds=2.0)
    assert model.config.max_length_seconds == 0.65 and "--max_length_seconds 2.0" in caplog.text
    frames = 1 + (int(0.65 * 16000) - 400) // 160  # kaldi fbank: 25-ms windows every 10 ms
    assert frames <= extractor.max_length
    model, _ = build_model(ModelArguments(model_name_or_path=str(folder)), ["a", "b"], max_length_seconds=0.5)
    assert model.config.max_length_seconds == 0.5  # a crop it hears whole is kept


@pytest.fixture
def uninitialised_memory_is_nan():
    """torch.empty fills floats with NaN under deterministic algorithms: what a parameter left as allocated holds
    is then NaN every time, not whatever the allocator happened to reuse."""
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("model_type", ["wav2vec2", "wavlm"])
def test_weighted_layer_sum_starts_as_the_plain_mean_of_the_layers(model_type, tmp_path, uninitialised_memory_is_nan):
    """Before: a checkpoint without `layer_weights` (every SSL base, facebook/wav2vec2-xls-r-300m of the language-ID
    recipe) got them as allocated by transformers, never initialised: measured [2e29, 3e-41, 3e27] (softmax: one
    layer at random, saturated), NaN here."""
    folder = save_tiny_ssl_model(tmp_path / model_type, model_type, labels=["x", "y"])
    model, extractor = build_model(ModelArguments(model_name_or_path=str(folder), use_weighted_layer_sum=True),
                                   ["a", "b", "c"], max_length_seconds=1)
    torch.testing.assert_close(model.layer_weights.data, torch.full((3,), 1 / 3))  # 2 layers + the embeddings
    assert torch.isfinite(_logits(model, extractor, speech_like_clips(3))).all()


def test_a_sampling_rate_a_pretrained_model_cannot_take_is_refused_by_name(tmp_path):
    """Before: `--sampling_rate 8000` with a 16-kHz checkpoint was dropped without a word (the data went to 16 kHz)."""
    from hfspeech.errors import UsageError
    from hfspeech.training.model_setup import pretrained_feature_extractor

    folder = save_tiny_ssl_model(tmp_path / "w2v2", "wav2vec2", labels=["x", "y"])
    with pytest.raises(UsageError, match=r"^--sampling_rate 8000: .* takes audio at 16000 Hz"):
        pretrained_feature_extractor(ModelArguments(model_name_or_path=str(folder), sampling_rate=8000))
    assert pretrained_feature_extractor(ModelArguments(model_name_or_path=str(folder))).sampling_rate == 16000


def _spec_augmented_model(folder):
    model, extractor = build_model(ModelArguments(model_name_or_path=str(folder),
                                                  config_overrides='{"mask_time_prob": 0.5}'), ["a", "b"],
                                   max_length_seconds=1)
    return model, extractor


def test_spec_augment_trains_on_a_batch_shorter_than_its_span(tmp_path):
    """Before: a training batch under `mask_time_length` frames (10: 0.2 s, FSDD's shortest digits are 0.14 s) was
    a ValueError traceback from transformers in the middle of the run."""
    folder = save_tiny_ssl_model(tmp_path / "w2v2", "wav2vec2", labels=["a", "b"])
    model, extractor = _spec_augmented_model(folder)
    clips = [clip[:1600] for clip in speech_like_clips(4)[:2]]  # 0.1 s: 4 frames of the tiny encoder
    batch = AudioClassificationCollator(extractor)([{"input_values": clip, "label": 1} for clip in clips])
    output = model.train()(**batch)
    assert torch.isfinite(output.loss)
    output.loss.backward()


def test_a_clip_shorter_than_one_encoder_frame_trains_and_leaves_the_others_alone(tmp_path):
    """Before: "Kernel size can't be greater than actual input size" (a 300-sample click; predict pads it)."""
    folder = save_tiny_ssl_model(tmp_path / "w2v2", "wav2vec2", labels=["a", "b"], initializer_range=0.5)
    model, extractor = build_model(ModelArguments(model_name_or_path=str(folder)), ["a", "b"], max_length_seconds=1)
    click, longer = speech_like_clips(5)[1][:300], speech_like_clips(5)[0]
    batch = AudioClassificationCollator(extractor)([{"input_values": clip, "label": 0} for clip in [click, click]])
    assert torch.isfinite(model.train()(**batch).loss)
    together = _logits(model, extractor, [longer, click])
    assert torch.isfinite(together).all()
    # 1e-4 as tests/test_padding_invariance.py: logits near 5.8 (initializer_range 0.5) differed by 1.24e-5 between
    # batch shapes under oneDNN's AVX2 kernels (an AVX2-only CI runner), 1.4e-6 under AVX-512; a click leaking
    # into its batch mate would move them by the logits' own size
    torch.testing.assert_close(together[0], _logits(model, extractor, [longer])[0], atol=1e-4, rtol=0)


def test_spec_augments_new_mask_vector_is_initialised(tmp_path, uninitialised_memory_is_nan):
    """Before: a checkpoint saved without masking has no `masked_spec_embed`; transformers left the new one as
    allocated (measured 9.9e35 in it), and the first masked batch made the loss NaN."""
    folder = save_tiny_ssl_model(tmp_path / "w2v2", "wav2vec2", labels=["a", "b"])
    model, extractor = _spec_augmented_model(folder)
    assert torch.isfinite(model.wav2vec2.masked_spec_embed).all()
    examples = [{"input_values": clip, "label": 1} for clip in speech_like_clips(6)]
    batch = AudioClassificationCollator(extractor)(examples)
    assert torch.isfinite(model.train()(**batch).loss)


def test_a_crop_longer_than_whispers_positions_is_cut_with_a_warning(tmp_path, caplog):
    """Before: `--max_length_seconds 45` became a 30-s crop without a word."""
    folder = save_tiny_ssl_model(tmp_path / "whisper", "whisper", labels=["a", "b"])
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        model, extractor = build_model(ModelArguments(model_name_or_path=str(folder)), ["a", "b"],
                                       max_length_seconds=45)
    assert model.config.max_length_seconds == extractor.chunk_length == 30
    assert "--max_length_seconds 45: Whisper's encoder hears at most 30 s" in caplog.text
