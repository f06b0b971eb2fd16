"""Runs of several processes on CPU (gloo) and on several machines: test numbers scored where the test clips outlast
the crop (accelerate names a CPU process's device `cpu:<index>`, which the re-scoring refused as a --device); every
process training on the same data (a bad clip skipped on one machine's copy of the data alone shifted that machine's
table under its sampler, without a word); cross-validation's fold manifests on each machine's own folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_CNN, write_long_tone_clips, write_tone_folder
from tests.test_distributed import REPO, free_port, launch_two_processes
from tests.test_multimachine41 import exited_on_the_line


def test_two_cpu_processes_score_test_clips_longer_than_the_crop(tmp_path):
    data = write_long_tone_clips(tmp_path / "data")  # 0.6-s clips, the launch's crop 0.5 s
    out, log = launch_two_processes(tmp_path, ["--data_dir", str(data), "--num_train_epochs", "1",
                                               "--test_split_percentage", "20", "--save_strategy", "no"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_scored_as"] == "whole clips, windows of 0.5 s, mean", log[-3000:]
    assert 0 <= metrics["test_accuracy"] <= 1
    matrix = json.loads((out / "test_confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == metrics["num_test_clips"] > 0


def test_the_first_process_of_another_machine_writes_its_own_fold_manifests(tmp_path, monkeypatch):
    """Machine 1 of two, each with a folder of its own (`runs/cv` on a node-local disk): its first process is global
    process 1, and machine 0 alone wrote the manifests, so machine 1 stopped, "manifest file not found"."""
    from transformers import TrainingArguments

    from hfspeech.training import cross_validation
    from tests.test_distill_cv_audit import cross_validate, write_speaker_manifest

    manifest = write_speaker_manifest(tmp_path / "data", labels=("yes", "no", "yes"))
    root = tmp_path / "cv"
    monkeypatch.setattr(TrainingArguments, "process_index", property(lambda self: 1))  # local process 0 still
    read = []

    def fold_on_machine_one(model_args, data_args, training_args):  # run_training there: it reads the manifests
        read.append(Path(data_args.train_file).read_text(encoding="utf-8").count("\n"))
        return {"num_test_clips": 1, "num_skipped_files": 0}

    monkeypatch.setattr(cross_validation, "run_training", fold_on_machine_one)
    assert cross_validate(manifest, root) == 0
    assert read == [7, 7, 7]  # a header and the two other speakers' 3 clips each
    assert len(list(root.rglob("*.csv"))) == 6
    assert not (root / "cross_validation.json").exists()  # the summary stays global process 0's


def test_fold_manifests_already_written_as_drawn_are_not_rewritten(tmp_path):
    """On a folder both machines share, the second machine's first process finds the manifests the first wrote:
    rewriting them truncated each for a moment, while the other machine may be checking it."""
    from hfspeech.training.cross_validation import drawn_folds
    from tests.test_distill_cv_audit import write_speaker_manifest

    manifest = write_speaker_manifest(tmp_path / "data", labels=("yes", "no", "yes"))
    folds, _ = drawn_folds(manifest, "speaker", str(tmp_path / "cv"), 0.0, 0)
    files = [Path(path) for manifests in folds.values() for path in manifests.values()]
    written = {path: path.stat().st_mtime_ns for path in files}
    files[0].write_text("path,label,speaker\n", encoding="utf-8")  # one not as drawn: written again
    drawn_folds(manifest, "speaker", str(tmp_path / "cv"), 0.0, 0)
    assert {path: path.stat().st_mtime_ns for path in files[1:]} == {path: written[path] for path in files[1:]}
    assert files[0].read_text(encoding="utf-8").count("\n") == 7


def launch_two_machines(tmp_path: Path, data: list[Path], recipe_args: list[str]) -> list[tuple[int, str]]:
    """Two machines of one process each, simulated on this one (`--num_machines 2 --machine_rank R`), each with its
    own data copy, datasets cache and working folder (`--output_dir runs/x` on its own disk): (exit code, output)
    of each launcher."""
    port, launches = free_port(), []
    for rank, copy in enumerate(data):
        machine = tmp_path / f"machine{rank}"
        machine.mkdir()
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
                   "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
                   str(REPO / "recipes" / "finetune.py"), "--data_dir", str(copy), "--output_dir", "runs/x",
                   "--config_overrides", TINY_CNN, "--max_length_seconds", "0.5", "--seed", "0", *recipe_args]
        env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
               "HF_DATASETS_CACHE": str(machine / "cache")}
        launches.append(subprocess.Popen(command, cwd=machine, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))
    return [(launch.wait(timeout=240), launch.stdout.read()) for launch in launches]


def test_machines_whose_copies_of_the_data_differ_stop_together_with_one_line(tmp_path):
    """Machine 1's copy has one clip it cannot decode, skipped there alone (--skip_bad_files): it trained on 17 clips,
    machine 0 on 18, both exit 0, and machine 0's metrics.json said 0 skipped."""
    good = write_tone_folder(tmp_path / "data0", clips_per_class=8, rates=(16000,))
    bad = shutil.copytree(good, tmp_path / "data1")
    (bad / "low" / "low_000.wav").write_bytes(b"RIFF, but no audio")
    results = launch_two_machines(tmp_path, [good, bad], ["--skip_bad_files", "--num_train_epochs", "1"])
    for code, output in results:
        lines = [line for line in output.splitlines() if line.startswith("error: ")]
        assert code != 0 and exited_on_the_line(output), output[-3000:]
        assert lines == ["error: train: process 0 has 18 clips, process 1 has 17 clips (a clip skipped or missing on "
                         "one machine's copy of the data): give every machine the same data"], output[-3000:]
        assert "gloo" not in output.lower()
    assert not list(tmp_path.rglob("metrics.json"))


def test_copies_of_the_data_are_compared_by_their_clips_not_their_paths(tmp_path):
    """Equal counts: a clip whose bytes or label differ on one machine's copy is told; the same clips elsewhere are
    the same data (each machine keeps its copy where it keeps it)."""
    from datasets import Audio, Dataset, DatasetDict

    from hfspeech.training.same_data import data_identity, different_data

    def identity(folder: Path, labels: list[int]) -> dict:
        paths = [str(path) for path in sorted(folder.rglob("*.wav"))]
        split = Dataset.from_dict({"audio": paths, "label": labels}).cast_column("audio", Audio(decode=False))
        return data_identity(["high", "low", "noise"], DatasetDict(train=split), DatasetDict())

    first = write_tone_folder(tmp_path / "first", clips_per_class=2, rates=(16000,))
    same = shutil.copytree(first, tmp_path / "elsewhere")
    labels = [0, 0, 1, 1, 2, 2]
    assert different_data([identity(first, labels), identity(same, labels)]) is None
    relabelled = different_data([identity(first, labels), identity(same, [0, 0, 1, 1, 2, 1])])
    assert relabelled == ("train: the 6 clips differ between process 0 and process 1 (a clip, or its label, that "
                          "differs on one machine's copy of the data): give every machine the same data")
    (same / "low" / "low_001.wav").write_bytes((first / "high" / "high_000.wav").read_bytes())
    assert different_data([identity(first, labels), identity(same, labels)]) == relabelled
    assert different_data([identity(first, labels), identity(first, labels), identity(same, labels)]).startswith(
        "train: the 6 clips differ between processes 0, 1 and process 2")
