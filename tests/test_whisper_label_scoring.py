"""`WhisperForLabelScoring`: Whisper's decoder scores each label's words (`models.whisper.modeling_label_scoring`).

The packed, prefix-sharing computation gives the same logits as scoring every spelling in its own decoder pass
(SDPA and eager attention alike); the saved classifier reloads through the Auto classes with the same logits;
it exports to ONNX (one vocabulary table in the graph) and TorchScript; the recipe trains one from the real
tiny.en with `--score_label_words` and predicts spoken words with it, and trains a saved one on only for the
labels it scores.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForAudioClassification, WhisperFeatureExtractor

from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models import register
from hfspeech.models.whisper.configuration_label_scoring import WhisperLabelScoringConfig
from hfspeech.models.whisper.modeling_label_scoring import WhisperForLabelScoring, plan_scoring
from tests.conftest import synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")
PROMPT, END = [1, 2], 0
FORMS = [[[10], [10, 11]], [[12]], [[13, 10, 11], [13]]]  # label 0: two spellings, one the start of the other


def test_plan_runs_only_the_longest_sequences_and_scores_every_token():
    plan = plan_scoring(PROMPT, FORMS, END)
    assert plan.inputs.tolist() == [1, 2, 13, 10, 11, 10, 11, 12]  # the prompt once; [10] and [13] run inside
    assert plan.sequence.tolist() == [-1, -1, 0, 0, 0, 1, 1, 2]  # -1: the prompt, seen by every sequence
    assert plan.positions.tolist() == [0, 1, 2, 3, 4, 2, 3, 2]
    assert len(plan.prefix_end) == 7  # [1 2], [1 2 13], [1 2 13 10], [1 2 13 10 11], [1 2 10], [1 2 10 11], [1 2 12]
    assert len(plan.step_token) == 2 + 3 + 2 + 4 + 2  # each spelling's tokens and its end of text
    assert plan.form_label.tolist() == [0, 0, 1, 2, 2]


def tiny_scorer(attention: str, mel_bins: int = 8, positions: int = 10) -> WhisperForLabelScoring:
    config = WhisperLabelScoringConfig(
        prompt_ids=PROMPT, label_form_ids=FORMS, label_forms=[["a", "a."], ["b"], ["c", "c."]], vocab_size=20,
        d_model=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=mel_bins, max_source_positions=positions,
        max_target_positions=16, eos_token_id=END, pad_token_id=END, bos_token_id=END, decoder_start_token_id=1,
        num_labels=3)
    config._attn_implementation = attention
    torch.manual_seed(0)
    return WhisperForLabelScoring(config).eval()


def one_pass_per_spelling(model: WhisperForLabelScoring, features: torch.Tensor) -> torch.Tensor:
    """The definition: log sum over spellings of the decoder's log P(spelling, end of text), each on its own."""
    states = model.model.encoder(features).last_hidden_state
    logits = []
    for spellings in FORMS:
        per_form = []
        for ids in spellings:
            tokens = torch.tensor([PROMPT + ids + [END]] * len(features))
            hidden = model.model.decoder(input_ids=tokens[:, :-1], encoder_hidden_states=states).last_hidden_state
            log_probs = model.proj_out(hidden).log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
            per_form.append(log_probs[:, len(PROMPT) - 1:].sum(1))
        logits.append(torch.logsumexp(torch.stack(per_form, 1), 1))
    return torch.stack(logits, 1)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_scoring_equals_one_decoder_pass_per_spelling(attention):
    model = tiny_scorer(attention)
    features = torch.randn(3, 8, 20)
    with torch.no_grad():
        torch.testing.assert_close(model(features).logits, one_pass_per_spelling(model, features), atol=1e-5, rtol=0)


def test_saved_scorer_reloads_through_the_auto_classes(tmp_path):
    register()
    model = tiny_scorer("sdpa")
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is WhisperForLabelScoring
    assert reloaded.proj_out.weight is reloaded.model.decoder.embed_tokens.weight  # still tied
    features = torch.randn(2, 8, 20)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(features).logits, model(features).logits)


@pytest.fixture(scope="module")
def scorer_folder(tmp_path_factory) -> Path:
    """A tiny random scorer for a 1-s window of Whisper's 80-bin log-mel, saved like a run."""
    from hfspeech.models.whisper import sized_feature_extractor

    register()
    folder = tmp_path_factory.mktemp("scorer") / "model"
    model = tiny_scorer("sdpa", mel_bins=80, positions=50)
    model.config.max_length_seconds = 1
    model.save_pretrained(folder)
    sized_feature_extractor(WhisperFeatureExtractor(), 1).save_pretrained(folder)
    return folder


def clips() -> list[np.ndarray]:
    return [synth_clip(kind, np.random.default_rng(1), 16000, 0.7) for kind in ("low", "high", "noise")]


def vocabulary_tables(onnx_file: Path, vocabulary: int) -> int:
    """How many of the graph's weights have a vocabulary-sized dimension."""
    import onnx

    return sum(vocabulary in weight.dims for weight in onnx.load(onnx_file).graph.initializer)


def test_scorer_exports_to_onnx_and_torchscript(scorer_folder, tmp_path):
    from hfspeech.export import export_onnx, export_torchscript

    expected = AudioClassifier.from_pretrained(str(scorer_folder), device=torch.device("cpu")).logits(clips())
    assert np.ptp(expected) > 1e-3
    onnx_file = export_onnx(scorer_folder, tmp_path / "onnx")
    onnx = AudioClassifier.from_pretrained(str(onnx_file))
    np.testing.assert_allclose(onnx.logits(clips()), expected, atol=1e-4, rtol=0)
    vocabulary = WhisperLabelScoringConfig.from_pretrained(scorer_folder).vocab_size
    assert vocabulary_tables(onnx_file, vocabulary) == 1  # the projection's; tokens' are folded
    traced = AudioClassifier.from_pretrained(str(export_torchscript(scorer_folder, tmp_path / "ts")))
    np.testing.assert_allclose(traced.logits(clips()), expected, atol=1e-4, rtol=0)


STAGED_SCORER_USE = """
import json
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
model = AutoModelForAudioClassification.from_pretrained({repo!r}, trust_remote_code=True).eval()
extractor = AutoFeatureExtractor.from_pretrained({repo!r})
with torch.no_grad():
    logits = model(**extractor(list(np.load({clips!r})), sampling_rate=16000, return_tensors="pt")).logits
print("RESULT" + json.dumps([type(model).__module__, logits.tolist()]))
"""


def test_staged_scorer_loads_without_hfspeech(scorer_folder, tmp_path):
    from hfspeech.hub import stage_run
    from test_hub import run_python_without_hfspeech

    stage_run(scorer_folder, tmp_path / "repo", repo_id="someone/words")
    np.save(tmp_path / "clips.npy", np.stack([np.pad(clip, (0, 16000 - len(clip))) for clip in clips()]))
    stdout = run_python_without_hfspeech(
        STAGED_SCORER_USE.format(repo=str(tmp_path / "repo"), clips=str(tmp_path / "clips.npy")), tmp_path)
    module, logits = json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT"))[6:])
    assert module.startswith("transformers_modules")
    expected = AudioClassifier.from_pretrained(str(scorer_folder), device=torch.device("cpu")).logits(clips())
    np.testing.assert_allclose(np.array(logits), expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def spoken_words(tmp_path_factory) -> Path:
    """data_dir/<word>/*.wav: four words, each in four espeak-ng voices."""
    folder = tmp_path_factory.mktemp("words")
    for word in ("three", "seven", "nine", "four"):
        (folder / word).mkdir()
        for index, voice in enumerate(("en", "en-us", "en+f3", "en+m3")):
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(folder / word / f"{index}.wav"), word], check=True)
    return folder


@pytest.fixture(scope="module")
def trained_scorer(whisper_tiny_en, spoken_words, tmp_path_factory) -> Path:
    """The real tiny.en trained through the recipe with `--score_label_words` on the spoken words."""
    from hfspeech.training.run import main

    run = tmp_path_factory.mktemp("scorer-run") / "run"
    main(["--model_name_or_path", str(whisper_tiny_en), "--score_label_words", "--data_dir", str(spoken_words),
          "--validation_split_percentage", "25", "--test_split_percentage", "25", "--max_length_seconds", "1.0",
          "--learning_rate", "1e-5", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
          "--output_dir", str(run), "--disable_tqdm", "True", "--save_strategy", "no", "--eval_strategy", "no",
          "--load_best_model_at_end", "False"])
    return run


def test_recipe_trains_a_label_scorer_from_tiny_en_that_names_spoken_words(trained_scorer, spoken_words):
    classifier = AudioClassifier.from_pretrained(str(trained_scorer))
    assert classifier.config.architectures == ["WhisperForLabelScoring"]
    predicted = {path.parent.name: classifier.classify_file(str(path)).labels[0]
                 for path in sorted(spoken_words.glob("*/1.wav"))}
    assert predicted == {word: word for word in predicted}


def test_a_saved_label_scorer_trains_on_for_its_own_labels_only(trained_scorer, spoken_words, tmp_path):
    from hfspeech.training.run import main

    common = ["--max_length_seconds", "1.0", "--max_steps", "1", "--per_device_train_batch_size", "4",
              "--validation_split_percentage", "25", "--test_split_percentage", "25", "--disable_tqdm", "True",
              "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False"]
    main(["--model_name_or_path", str(trained_scorer), "--score_label_words", "--data_dir", str(spoken_words),
          "--output_dir", str(tmp_path / "more"), *common])
    continued = json.loads((tmp_path / "more" / "config.json").read_text())
    assert continued["label_forms"] == json.loads((trained_scorer / "config.json").read_text())["label_forms"]
    fewer = tmp_path / "fewer"
    for word in ("three", "seven", "nine"):
        (fewer / word).mkdir(parents=True)
        for clip in (spoken_words / word).glob("*.wav"):
            (fewer / word / clip.name).symlink_to(clip)
    with pytest.raises(UsageError, match="scores the words .*four.*start from the Whisper checkpoint"):
        main(["--model_name_or_path", str(trained_scorer), "--data_dir", str(fewer),  # the flag or not: same check
              "--output_dir", str(tmp_path / "other"), *common])


@pytest.mark.parametrize("flags, message", [
    (["--freeze_base_model"], "drop --freeze_base_model"),
    (["--problem_type", "multi_label_classification"], "drop --problem_type"),
])
def test_label_scoring_refuses_what_it_cannot_do(whisper_tiny_en, spoken_words, tmp_path, flags, message):
    from hfspeech.training.run import main

    with pytest.raises(UsageError, match=message):
        main(["--model_name_or_path", str(whisper_tiny_en), "--score_label_words", "--data_dir", str(spoken_words),
              "--output_dir", str(tmp_path), *flags])


def test_label_scoring_needs_a_whisper_checkpoint(spoken_words, tmp_path):
    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.training.run import main

    save_tiny_ssl_model(str(tmp_path / "wav2vec2"))
    with pytest.raises(UsageError, match="needs a Whisper speech-to-text checkpoint"):
        main(["--model_name_or_path", str(tmp_path / "wav2vec2"), "--score_label_words", "--data_dir", str(spoken_words),
              "--output_dir", str(tmp_path / "run")])
