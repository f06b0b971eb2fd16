"""Mends from the code review, training and data side: one helper to read a column, one source of the split-name
defaults, files read once (each run's training_clips.json, each clip's size, a checkpoint's config), and the
encoder's final norm learning with the top layer under layer-wise learning-rate decay."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, Dataset
from transformers import AutoConfig, AutoModelForAudioClassification

from hfspeech.data.columns import column_values
from hfspeech.data.split_names import SPLIT_NAME_ARGUMENTS, given_in
from hfspeech.synthetic.tiny import GROUP_NORM_FEATURE_ENCODER, save_tiny_ssl_model, tiny_ssl_config
from hfspeech.training import model_setup
from hfspeech.training.arguments import DataArguments, ModelArguments
from hfspeech.training.optim import parameter_groups
from tests.test_model_loading_inputs import no_hub  # noqa: F401 (fixture)

LR, DECAY = 1e-3, 0.5


def test_column_values_follow_a_shuffled_selection_row_by_row():
    data = Dataset.from_dict({"label": list(range(20)), "path": [f"{i}.wav" for i in range(20)]})
    view = data.shuffle(seed=3).select(range(2, 9))
    assert column_values(view, "label") == [row["label"] for row in view]  # through the indices, not the table


def test_the_split_name_flags_default_to_their_roles_and_round_trip_through_source():
    defaults = {f.name: f.default for f in dataclasses.fields(DataArguments) if f.name in SPLIT_NAME_ARGUMENTS.values()}
    assert defaults == {argument: role for role, argument in SPLIT_NAME_ARGUMENTS.items()}
    source = DataArguments(dataset_name="x", train_split_name="training", test_split_name="eval").source()
    assert given_in(source) == {"train": "training", "test": "eval"}


def test_averaging_reads_each_runs_training_clips_once(tmp_path, monkeypatch):
    from hfspeech.data import clip_digests
    from hfspeech.training import averaging

    runs = []
    for name, clips in (("a", ["x.wav", "y.wav"]), ("b", ["y.wav", "z.wav"])):
        run = tmp_path / name
        run.mkdir()
        (run / "training_clips.json").write_text(json.dumps({"train": clips, "validation": []}))
        (run / "data_report.json").write_text(json.dumps({"kept": {"train": 2}}))
        runs.append(str(run))
    reads = []
    real = averaging.read_training_clips
    for module in (averaging, clip_digests):  # wherever a run's record is read from
        monkeypatch.setattr(module, "read_training_clips", lambda run: reads.append(run) or real(run))
    records = averaging._merged_records(runs)
    assert sorted(reads) == runs
    assert "data_report.json" not in records  # trained on other clips: no data report in common
    assert sorted(records["training_clips.json"]["train"]) == sorted(averaging.merged_training_clips(
        [real(run) for run in runs])["train"])


def test_the_writer_batch_size_reuses_file_sizes_already_known(tmp_path):
    from hfspeech.data.writer_batches import WRITER_BATCH_SIZE, writer_batch_size as _writer_batch_size

    clip = tmp_path / "short.wav"
    sf.write(clip, np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    split = Dataset.from_dict({"audio": [str(clip)], "label": [0]}).cast_column("audio", Audio(decode=False))
    sizes = {}
    assert _writer_batch_size(split, sizes) == _writer_batch_size(split) == WRITER_BATCH_SIZE
    assert sizes == {str(clip): clip.stat().st_size}
    sizes[str(clip)] = 2**30  # known as a gigabyte: taken as it is, not stat-ed again
    assert _writer_batch_size(split, sizes) == 1


def test_a_checkpoints_config_is_read_once_and_built_as_from_pretrained_builds_it(no_hub, tmp_path, monkeypatch):  # noqa: F811
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = no_hub / "models--someone--tiny-w2v2"
    shutil.copytree(save_tiny_ssl_model(tmp_path / "w2v2", "wav2vec2", labels=["x", "y"]), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    reads, real = [], AutoConfig.from_pretrained
    monkeypatch.setattr(model_setup.AutoConfig, "from_pretrained", lambda *a, **k: reads.append(a) or real(*a, **k))
    args = ModelArguments(model_name_or_path="someone/tiny-w2v2", config_overrides='{"mask_time_prob": 0.05}')
    model, _ = model_setup.build_model(args, ["a", "b", "c"], max_length_seconds=1)
    assert len(reads) == 1
    expected = real("someone/tiny-w2v2", finetuning_task="audio-classification", num_labels=3, mask_time_prob=0.05,
                    label2id={"a": 0, "b": 1, "c": 2}, id2label={0: "a", 1: "b", 2: "c"}, local_files_only=True,
                    problem_type="single_label_classification")  # recorded before any step (test_rerun31)
    assert expected._commit_hash == commit and model.config._commit_hash == commit  # the weights' revision
    assert model.config.to_diff_dict() | {"max_length_seconds": None} == expected.to_diff_dict() | {
        "max_length_seconds": None}


def test_padding_a_short_batch_leaves_the_callers_mask_alone():
    from hfspeech.models.short_batches import pad_short_batches

    model = AutoModelForAudioClassification.from_config(tiny_ssl_config("wav2vec2")).eval()
    pad_short_batches(model)
    values, mask = torch.zeros(2, 1600), torch.ones(2, 1600, dtype=torch.long)
    mask[1, 300:] = 0  # a click shorter than one encoder frame: counted up to one, in the hook's own mask
    given = mask.clone()
    model(input_values=values, attention_mask=mask)
    assert torch.equal(mask, given)


def _rates(model_type: str, **overrides) -> dict[str, float]:
    model = AutoModelForAudioClassification.from_config(tiny_ssl_config(model_type, **overrides))
    groups = parameter_groups(model, LR, 0.0, set(), layerwise_lr_decay=DECAY)
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    return {name: rate[id(p)] for name, p in model.named_parameters() if p.requires_grad}  # (Whisper's positions)


@pytest.mark.parametrize("model_type, top, final_norm", [
    ("wav2vec2", "wav2vec2.encoder.layers.1.attention.q_proj.weight", "wav2vec2.encoder.layer_norm.weight"),
    ("hubert", "hubert.encoder.layers.1.attention.q_proj.weight", "hubert.encoder.layer_norm.bias"),
    ("wavlm", "wavlm.encoder.layers.1.attention.q_proj.weight", "wavlm.encoder.layer_norm.weight"),
    ("whisper", "encoder.layers.1.self_attn.q_proj.weight", "encoder.layer_norm.weight"),
    ("audio-spectrogram-transformer", "audio_spectrogram_transformer.encoder.layer.1.attention.attention.query.weight",
     "audio_spectrogram_transformer.layernorm.weight"),
])
def test_the_norm_after_the_last_layer_learns_at_the_top_layers_rate(model_type, top, final_norm):
    """Before: it had no layer number, so it learnt with the embeddings at lr * decay**layers (BEiT, ELECTRA:
    with the top layer)."""
    rates = _rates(model_type)
    assert rates[top] == pytest.approx(LR)
    assert rates[final_norm] == pytest.approx(LR)
    assert min(rates.values()) == pytest.approx(LR * DECAY**2)  # the embeddings stay the slowest


def test_a_norm_before_the_first_layer_stays_with_the_embeddings():
    rates = _rates("wav2vec2", **GROUP_NORM_FEATURE_ENCODER)  # wav2vec2-base: the encoder's norm comes first
    assert rates["wav2vec2.encoder.layer_norm.weight"] == pytest.approx(LR * DECAY**2)
    assert rates["wav2vec2.encoder.layers.1.final_layer_norm.weight"] == pytest.approx(LR)
