"""Fine-tuning self-supervised encoders through the recipe, on tiny local checkpoints (no download)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

from hfspeech.synthetic.tiny import save_tiny_ssl_model
from hfspeech.training.run import main, parse_args, setup_training
from tests.conftest import synth_clip

FAST = ["--num_train_epochs", "1", "--max_length_seconds", "0.5", "--per_device_train_batch_size", "8",
        "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False"]


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    return save_tiny_ssl_model(tmp_path_factory.mktemp("w2v2") / "tiny", "wav2vec2", labels=["a", "b"])


def setup(checkpoint, data, output_dir, *extra):
    args = parse_args(["--model_name_or_path", str(checkpoint), "--data_dir", str(data),
                       "--output_dir", str(output_dir), *FAST, *extra])
    return setup_training(*args)


def test_tiny_wav2vec2_fine_tunes_through_the_recipe_and_reloads(tiny_wav2vec2, tone_folder, tmp_path):
    out = tmp_path / "run"
    main(["--model_name_or_path", str(tiny_wav2vec2), "--data_dir", str(tone_folder), "--output_dir", str(out),
          "--num_train_epochs", "8", "--learning_rate", "3e-3", "--max_length_seconds", "0.5",
          "--per_device_train_batch_size", "8", "--save_total_limit", "1", "--group_by_length",
          "--layerwise_lr_decay", "0.8", "--head_learning_rate", "1e-2", "--seed", "0"])
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert losses[-1] < 0.8 * losses[0], losses
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == ["high", "low", "noise"]  # the head was replaced for the new labels

    # The saved folder reloads with identical logits and serves in pipeline().
    model = AutoModelForAudioClassification.from_pretrained(out).eval()
    again = AutoModelForAudioClassification.from_pretrained(out).eval()
    extractor = AutoFeatureExtractor.from_pretrained(out)
    rng = np.random.default_rng(0)
    clips = [synth_clip("low", rng, 16000, 0.5), synth_clip("noise", rng, 16000, 0.3)]
    inputs = extractor(clips, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, again(**inputs).logits)
        single = model(**extractor(clips[0], sampling_rate=16000, return_tensors="pt")).logits
    results = pipeline("audio-classification", model=str(out))({"raw": clips[0], "sampling_rate": 16000}, top_k=3)
    probabilities = torch.softmax(single[0], -1)
    assert {r["label"] for r in results} == {"high", "low", "noise"}
    assert results[0]["label"] == model.config.id2label[int(probabilities.argmax())]
    assert results[0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_feature_encoder_freezing_really_freezes(tiny_wav2vec2, tone_folder, tmp_path):
    trainer = setup(tiny_wav2vec2, tone_folder, tmp_path).trainer
    model = trainer.model
    encoder = {n for n, p in model.named_parameters() if n.startswith("wav2vec2.feature_extractor.")}
    assert encoder and all(not p.requires_grad for n, p in model.named_parameters() if n in encoder)
    optimizer = trainer.create_optimizer()
    seen = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert seen == {id(p) for p in model.parameters() if p.requires_grad}

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert not changed & encoder
    assert "classifier.weight" in changed and any(n.startswith("wav2vec2.encoder.layers.") for n in changed)

    # What was trained is what is saved: the reloaded model gives the same logits as the one in memory.
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = AutoModelForAudioClassification.from_pretrained(tmp_path / "saved").eval()
    clip = synth_clip("high", np.random.default_rng(3), 16000, 0.7)
    inputs = AutoFeatureExtractor.from_pretrained(tmp_path / "saved")(clip, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model.eval()(**inputs).logits, reloaded(**inputs).logits)


@pytest.mark.parametrize("cache", ["True", "False"])
def test_freeze_base_model_is_a_linear_probe(cache, tiny_wav2vec2, tone_folder, tmp_path):
    trainer = setup(tiny_wav2vec2, tone_folder, tmp_path, "--freeze_base_model", "--use_weighted_layer_sum",
                    "True", "--cache_frozen_features", cache).trainer
    model = trainer.model.model if cache == "True" else trainer.model  # cached: the head runs from features
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias"}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= trainable


def test_layerwise_learning_rates(tiny_wav2vec2, tone_folder, tmp_path):
    trainer = setup(tiny_wav2vec2, tone_folder, tmp_path, "--learning_rate", "1e-3", "--layerwise_lr_decay", "0.5",
                    "--head_learning_rate", "1e-2").trainer
    optimizer = trainer.create_optimizer()
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(trainer.model.named_parameters())
    # Two encoder layers: the top one at lr, the one below at lr/2, everything beneath at lr/4.
    assert rate[id(named["wav2vec2.encoder.layers.1.attention.q_proj.weight"])] == pytest.approx(1e-3)
    assert rate[id(named["wav2vec2.encoder.layers.0.attention.q_proj.weight"])] == pytest.approx(5e-4)
    assert rate[id(named["wav2vec2.feature_projection.projection.weight"])] == pytest.approx(2.5e-4)
    assert rate[id(named["classifier.weight"])] == pytest.approx(1e-2)
    # No weight decay on biases and norms, as in the Trainer's own groups.
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups
               if any(p is named["classifier.bias"] for p in group["params"]))


@pytest.mark.parametrize("model_type", ["hubert", "wavlm", "audio-spectrogram-transformer"])
def test_other_ssl_families_train_through_the_recipe(model_type, tone_folder, tmp_path):
    checkpoint = save_tiny_ssl_model(tmp_path / model_type, model_type)
    metrics = main(["--model_name_or_path", str(checkpoint), "--data_dir", str(tone_folder),
                    "--output_dir", str(tmp_path / "run"), *FAST, "--max_train_samples", "16"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model_type"] == model_type
    assert metrics["num_train_clips"] == 16


def test_group_norm_models_get_no_attention_mask(tone_folder, tmp_path):
    """wav2vec2-base style checkpoints (group-norm feature encoder) must be fed zero padding, no mask."""
    checkpoint = save_tiny_ssl_model(tmp_path / "base", "wav2vec2", feat_extract_norm="group",
                                     do_stable_layer_norm=False)
    setup_ = setup(checkpoint, tone_folder, tmp_path / "run")
    batch = setup_.trainer.data_collator([setup_.views["train"][i] for i in range(4)])
    assert "attention_mask" not in batch
    forced = setup(checkpoint, tone_folder, tmp_path / "run2", "--return_attention_mask", "True")
    assert "attention_mask" in forced.trainer.data_collator([forced.views["train"][i] for i in range(2)])


def test_recipe_args_files_parse_and_the_command_line_wins(tiny_wav2vec2, tone_folder, tmp_path):
    from pathlib import Path

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    for args_file in sorted(recipes.glob("*/*.args")):
        if args_file.parent.name == "fsdd":  # flag files for every model family (recipes/fsdd/README.md)
            assert parse_args(["--args_file", str(args_file), "--train_file", "x.csv", "--output_dir", str(tmp_path)])
            continue
        model_args, data_args, training_args = parse_args(
            ["--args_file", str(args_file), "--model_name_or_path", str(tiny_wav2vec2), "--data_dir",
             str(tone_folder), "--output_dir", str(tmp_path), "--num_train_epochs", "2"])
        assert model_args.model_name_or_path == str(tiny_wav2vec2) and training_args.num_train_epochs == 2
        assert model_args.freeze_feature_encoder and model_args.head_learning_rate == 1e-3
    with pytest.raises(FileNotFoundError, match="nowhere.args: --args_file not found"):
        parse_args(["--args_file", str(tmp_path / "nowhere.args"), "--output_dir", str(tmp_path)])


def test_group_by_length_batches_clips_of_similar_length(tiny_wav2vec2, tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(32):
            seconds = rng.uniform(0.1, 0.4) if i % 2 else rng.uniform(1.2, 1.6)
            sf.write(tmp_path / "data" / label / f"{i}.wav", synth_clip("noise", rng, 16000, seconds), 16000)

    def padded_samples(*flags):
        trainer = setup(tiny_wav2vec2, tmp_path / "data", tmp_path / "run", "--per_device_train_batch_size", "4",
                        "--max_length_seconds", "2", "--validation_split_percentage", "0",
                        "--test_split_percentage", "0", *flags).trainer
        lengths = trainer.train_lengths
        order = list(trainer._get_train_sampler())
        assert sorted(order) == list(range(64))
        return sum(4 * max(lengths[i] for i in order[k : k + 4]) for k in range(0, 64, 4))

    # Grouped batches hold clips of similar length, so far less of each batch is padding.
    assert padded_samples("--group_by_length") < 0.8 * padded_samples()


def test_layerwise_decay_finds_the_layers_of_ast(tone_folder, tmp_path):
    checkpoint = save_tiny_ssl_model(tmp_path / "ast", "audio-spectrogram-transformer")
    trainer = setup(checkpoint, tone_folder, tmp_path / "run", "--learning_rate", "1e-3",
                    "--layerwise_lr_decay", "0.5").trainer
    rate = {id(p): g["lr"] for g in trainer.create_optimizer().param_groups for p in g["params"]}
    named = dict(trainer.model.named_parameters())
    prefix = "audio_spectrogram_transformer."
    assert rate[id(named[prefix + "encoder.layer.1.attention.attention.query.weight"])] == pytest.approx(1e-3)
    assert rate[id(named[prefix + "encoder.layer.0.attention.attention.query.weight"])] == pytest.approx(5e-4)
    assert rate[id(named[prefix + "embeddings.patch_embeddings.projection.weight"])] == pytest.approx(2.5e-4)


def test_a_clip_shorter_than_one_encoder_frame_is_classified_not_a_crash(tiny_wav2vec2, tmp_path, capsys):
    from transformers import Wav2Vec2Config

    from hfspeech.cli import main as cli
    from hfspeech.models.inputs import min_samples

    assert min_samples(Wav2Vec2Config()) == 400  # wav2vec2-base's receptive field: 25 ms at 16 kHz
    clip = tmp_path / "click.wav"
    sf.write(clip, np.full(100, 0.1, np.float32), 16000)  # 100 samples: less than the tiny encoder's frame
    assert cli(["predict", str(tiny_wav2vec2), str(clip), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_windows"] == 1


def test_tiny_model_writes_only_a_new_folder_of_distinct_labels(tmp_path, capsys):
    from hfspeech.cli import main as cli

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("{}")
    assert cli(["tiny-model", str(tmp_path / "mine")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'mine'}: holds other files (config.json); give a new")
    assert (tmp_path / "mine" / "config.json").read_text() == "{}"
    assert cli(["tiny-model", str(tmp_path / "dup"), "--labels", "a", "a"]) == 2
    assert "each label once" in capsys.readouterr().err and not (tmp_path / "dup").exists()
    assert cli(["tiny-model", str(tmp_path / "blank"), "--labels", "", "b"]) == 2  # wrote a label named ""
    assert "--labels: a label is empty" in capsys.readouterr().err and not (tmp_path / "blank").exists()
    assert cli(["tiny-model", str(tmp_path / "one"), "--labels", "yes"]) == 2  # a classifier of one class
    assert "--labels: two labels or more" in capsys.readouterr().err and not (tmp_path / "one").exists()
