"""Audit of the model-combining extras: `hfspeech average` (`training.averaging`) gives one model whatever the
order of its runs, and leaves the weights every run shares (a probe's frozen encoder) exactly as they were."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from hfspeech.cli import main as cli
from hfspeech.models.cnn import CNNAudioConfig, CNNAudioFeatureExtractor, CNNAudioForAudioClassification

LABELS = ["no", "yes"]


def save_run(folder: Path, seed: int, shared_seed=None, steps: int = 10) -> dict[str, torch.Tensor]:
    """A small CNN saved like a run: its own random weights, BatchNorm statistics and step count; with
    `shared_seed`, every weight but the classifier's is the same in each run (as a frozen base model is)."""
    torch.manual_seed(seed if shared_seed is None else shared_seed)
    config = CNNAudioConfig(conv_channels=(8, 16), n_mels=16, id2label=dict(enumerate(LABELS)),
                            label2id={label: i for i, label in enumerate(LABELS)})
    model = CNNAudioForAudioClassification(config).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        model.classifier.weight.normal_()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d) and shared_seed is None:
                module.running_mean.normal_()
                module.num_batches_tracked.fill_(steps)
    model.save_pretrained(folder)
    CNNAudioFeatureExtractor(n_mels=16).save_pretrained(folder)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def averaged(tmp_path: Path, runs: list[str], name: str) -> dict[str, torch.Tensor]:
    assert cli(["average", *runs, "--output_dir", str(tmp_path / name)]) == 0
    return load_file(tmp_path / name / "model.safetensors")


def test_the_average_is_the_same_whatever_the_order_of_the_runs(tmp_path):
    """Summed in float32 in the given order, 13 of 14 tensors of a real FSDD soup differed between `a b c` and
    `c b a` (by a rounding step), and BatchNorm's step count was the first run's (120 or 90 by order)."""
    runs = [str(tmp_path / f"seed{seed}") for seed in range(3)]
    for seed, (run, steps) in enumerate(zip(runs, (120, 75, 90))):
        save_run(Path(run), seed, steps=steps)
    forward, backward = averaged(tmp_path, runs, "abc"), averaged(tmp_path, runs[::-1], "cba")
    different = [name for name in forward if not torch.equal(forward[name], backward[name])]
    assert different == []
    assert forward["cnn.blocks.0.norm.num_batches_tracked"].item() == 95  # (120 + 75 + 90) / 3


def test_weights_every_run_shares_come_back_bit_for_bit(tmp_path):
    """A weight all runs share (a probe's frozen encoder) was summed in float32 and divided: for three runs
    about 15% of its values moved by a rounding step, so the soup's encoder was no longer the pretrained one."""
    states = [save_run(tmp_path / f"seed{seed}", seed, shared_seed=7) for seed in range(3)]
    soup = averaged(tmp_path, [str(tmp_path / f"seed{seed}") for seed in range(3)], "soup")
    shared = [name for name in soup if name != "classifier.weight" and soup[name].is_floating_point()]
    assert sum(soup[name].numel() for name in shared) > 1000
    moved = [name for name in shared if not torch.equal(soup[name], states[0][name])]
    assert moved == []
    torch.testing.assert_close(soup["classifier.weight"], sum(state["classifier.weight"] for state in states) / 3)


def test_runs_that_held_out_other_clips_do_not_pass_on_a_common_data_report(tmp_path, caplog):
    """Seeds that carve their splits from one folder report the same counts but trained on other clips (three
    seeds on 300 FSDD clips trained on all 300): the average carried the report, as if it had a test split."""
    import json

    runs = [tmp_path / f"seed{seed}" for seed in range(2)]
    for seed, run in enumerate(runs):
        save_run(run, seed)
        (run / "data_report.json").write_text(json.dumps({"kept": {"train": 2, "test": 1}}))
        heard = ["a", "b", "c"][:seed + 1] + ["d", "e"][seed:]  # a d e / a b e: each held out another
        (run / "training_clips.json").write_text(json.dumps({"train": heard[:2], "validation": heard[2:]}))
    averaged(tmp_path, [str(run) for run in runs], "soup")
    assert not (tmp_path / "soup" / "data_report.json").exists()
    assert "the runs trained on different clips (4 in all between them)" in caplog.text
    record = json.loads((tmp_path / "soup" / "training_clips.json").read_text())
    assert set(record["train"]) | set(record["validation"]) == {"a", "b", "d", "e"}
