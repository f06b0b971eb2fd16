"""LP-FT (linear probe, then fine-tune): the folder a probe run saves is a valid `--model_name_or_path` for
fine-tuning, and the fine-tuning starts from the probe's trained head instead of a new random one
(`recipes/fsdd/whisper_lpft.args`, the `lpft-*` runs of `benchmarks/pretrained.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForAudioClassification

from hfspeech.synthetic.tiny import save_tiny_ssl_model
from hfspeech.training.run import main, parse_args, setup_training

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max_length_seconds", "0.5", "--per_device_train_batch_size", "8", "--save_total_limit", "1", "--seed", "0"]


@pytest.fixture(scope="module")
def probe(tone_folder, tmp_path_factory) -> Path:
    """A linear probe of a tiny random Whisper (weighted layer sum), trained from the frozen-feature cache."""
    base = save_tiny_ssl_model(tmp_path_factory.mktemp("whisper") / "tiny", "whisper", labels=["a", "b"],
                               init_std=0.5)
    out = tmp_path_factory.mktemp("lpft") / "probe"
    main(["--model_name_or_path", str(base), "--data_dir", str(tone_folder), "--output_dir", str(out),
          "--freeze_base_model", "--use_weighted_layer_sum", "True", "--num_train_epochs", "4",
          "--learning_rate", "1e-2", *FAST])
    return out


def test_fine_tuning_from_a_probe_starts_from_its_head(probe, tone_folder, tmp_path):
    saved = AutoModelForAudioClassification.from_pretrained(probe)
    setup = setup_training(*parse_args(["--args_file", str(ROOT / "recipes" / "fsdd" / "whisper_lpft.args"),
                                        "--model_name_or_path", str(probe), "--data_dir", str(tone_folder),
                                        "--output_dir", str(tmp_path / "ft"), *FAST]))
    model = setup.trainer.model
    assert model.config.max_source_positions == 50 and model.config.use_weighted_layer_sum
    for name in ("classifier.weight", "projector.weight", "layer_weights"):  # carried over, not re-initialised
        assert torch.equal(model.get_parameter(name), saved.get_parameter(name)), name
    assert any(p.requires_grad for p in model.encoder.parameters())  # the encoder trains this time
    assert setup.trainer.args.metric_for_best_model == "loss" and not setup.trainer.args.greater_is_better


def test_benchmark_trains_the_probe_a_fold_starts_from_when_missing(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks import pretrained

    trained, recorded = [], []
    def train(name, flag_file, extra, data, out):
        trained.append((name, flag_file, out))
        return {"test_accuracy": 0.5}

    monkeypatch.setattr(pretrained, "train", train)
    data = ["--train_file", "t.csv"]
    assert pretrained.start_from("--seed", "nicolas", data, tmp_path) == "--seed"
    path = pretrained.start_from("{probe-tiny}", "nicolas", data, tmp_path, lambda *kv: recorded.append(kv))
    assert path == str(tmp_path / "runs" / "probe-tiny" / "nicolas")
    assert trained == [("fsdd/probe-tiny/nicolas", "whisper_probe.args", Path(path))]
    assert recorded == [("fsdd/probe-tiny/nicolas", {"test_accuracy": 0.5})]
    (Path(path)).mkdir(parents=True)
    (Path(path) / "config.json").write_text(json.dumps({}))
    pretrained.start_from("{probe-tiny}", "nicolas", data, tmp_path)
    assert len(trained) == 1  # an existing probe is reused


def test_benchmark_gives_a_soup_its_members_training_data(monkeypatch, tmp_path):
    """A soup's members that are still missing are trained on the soup's fold manifests, so those must be the
    members' (espeak-ng digits added), not the real-only ones a soup's own name would pick."""
    sys.path.insert(0, str(ROOT))
    from argparse import Namespace

    from benchmarks import pretrained

    asked = []
    monkeypatch.setattr(pretrained, "fold_manifests", lambda work, fold, synthetic=0, accents=False: (
        asked.append((fold, synthetic, accents)) or {split: Path(split) for split in ("train", "validation", "test")}))
    args = Namespace(folds=["lucas"], runs=["lpft-base-clip1s-espeak-soup", "probe-tiny-soup"], resume=False)
    assert [run[1] for run in pretrained.pending_fsdd_runs(args, {}, tmp_path)] == args.runs
    assert asked == [("lucas", 60, False), ("lucas", 0, False)]
