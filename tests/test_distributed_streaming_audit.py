"""Audit of multi-process training and `--streaming`: what a resumed or a 2-process run must still get right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hfspeech.training.run import main
from tests.conftest import TINY_CNN


def streamed_run(data: Path, out: Path, epochs: int) -> dict:
    main(["--data_dir", str(data), "--streaming", "--shuffle_buffer_size", "16", "--output_dir", str(out),
          "--config_overrides", TINY_CNN, "--num_train_epochs", str(epochs), "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5", "--seed", "0", "--save_total_limit", "3"])
    return json.loads((out / "trainer_state.json").read_text())


def losses(state: dict) -> list[tuple[float, int, float]]:
    return [(e["epoch"], e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]


def test_a_resumed_stream_trains_the_passes_it_had_not_made(tone_folder, tmp_path):
    """A streamed run killed after 2 of 3 passes and resumed must train pass 3 (its own shuffle), as the
    uninterrupted run did. Before, the Trainer saw one endless epoch: it skipped pass 1 and trained pass 2's
    order a second time, so the resumed run's last loss differed and it ended at 'epoch 2.0'."""
    whole = streamed_run(tone_folder, tmp_path / "whole", epochs=3)
    per_pass = whole["max_steps"] // 3
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "whole" / f"checkpoint-{2 * per_pass}", resumed_dir / f"checkpoint-{2 * per_pass}")
    resumed = streamed_run(tone_folder, resumed_dir, epochs=3)
    assert resumed["global_step"] == whole["global_step"] == 3 * per_pass
    (epoch, step, loss), (whole_epoch, whole_step, whole_loss) = losses(resumed)[-1], losses(whole)[-1]
    assert (epoch, step) == (whole_epoch, whole_step) == (3.0, 3 * per_pass)
    assert abs(loss - whole_loss) < 1e-3 * whole_loss, (losses(resumed), losses(whole))


def test_a_stream_with_drop_last_counts_only_full_batches_per_pass(tone_folder, tmp_path):
    """`--dataloader_drop_last` drops each pass's incomplete last batch; max_steps counted it anyway, so a
    2-epoch run took extra steps into a third pass (logged as 'epoch 3.0')."""
    out = tmp_path / "run"
    main(["--data_dir", str(tone_folder), "--streaming", "--shuffle_buffer_size", "16", "--output_dir", str(out),
          "--config_overrides", TINY_CNN, "--num_train_epochs", "2", "--per_device_train_batch_size", "7",
          "--max_length_seconds", "0.5", "--seed", "0", "--dataloader_drop_last", "--eval_strategy", "no",
          "--save_strategy", "no"])
    n_train = json.loads((out / "metrics.json").read_text())["num_train_clips"]
    assert n_train % 7, "the test needs an incomplete last batch"
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 * (n_train // 7)
    assert [e["epoch"] for e in state["log_history"] if "loss" in e] == [1.0, 2.0]


def test_two_processes_train_from_a_stream_and_resume_it_where_it_stopped(tone_folder, tmp_path):
    """2 CPU processes (gloo), `--streaming`: the uninterrupted run trains one model from the stream split in two
    (tests/test_distributed.py's checks, once test_two_processes_train_from_a_stream's own launch), then resumed
    after pass 1 of 2. Before, the resume died with a torch traceback on every rank (the optimizer state was loaded
    with `map_location=cpu:<rank>`, which torch cannot restore to), and past that the Trainer would have replayed
    pass 1's shuffle instead of pass 2's."""
    from tests.test_distributed import check_ranks_trained_together, launch_two_processes

    args = ["--data_dir", str(tone_folder), "--streaming", "--shuffle_buffer_size", "16", "--num_train_epochs", "2",
            "--save_total_limit", "3"]
    whole, _ = launch_two_processes(tmp_path / "whole", args)
    check_ranks_trained_together(tmp_path / "whole", whole, epochs=2)
    state = json.loads((whole / "trainer_state.json").read_text())
    per_pass = state["max_steps"] // 2
    resumed = tmp_path / "resumed" / "run"
    resumed.mkdir(parents=True)
    shutil.copytree(whole / f"checkpoint-{per_pass}", resumed / f"checkpoint-{per_pass}")
    launch_two_processes(tmp_path / "resumed", args)
    markers = [json.loads(p.read_text()) for p in sorted((tmp_path / "resumed" / "markers").glob("rank*.json"))]
    assert [m["global_step"] for m in markers] == [2 * per_pass] * 2
    assert markers[0]["parameter_checksum"] == markers[1]["parameter_checksum"]
    epoch, step, loss = losses(json.loads((resumed / "trainer_state.json").read_text()))[-1]
    whole_loss = losses(state)[-1][2]
    assert (epoch, step) == (2.0, 2 * per_pass)
    assert abs(loss - whole_loss) < 1e-3 * whole_loss  # pass 2's own batches, as in the run that was not stopped
    metrics = json.loads((resumed / "metrics.json").read_text())
    matrix = json.loads((resumed / "test_confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == metrics["num_test_clips"]
