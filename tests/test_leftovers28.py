"""What a run leaves outside its output folder and holds while running: nothing in the `evaluate` metrics cache
(HF_HOME/metrics) for metrics computed in this process; no run hung, holding its decoding workers, on a bad file;
no DataLoader workers kept alive by the traceback of an interrupted run."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from transformers import (AutoModelForAudioClassification, EvalPrediction, PretrainedConfig, TrainerCallback,
                          TrainingArguments)

from conftest import save_random_baseline, write_tone_folder
from hfspeech.data.audio import AudioFileError
from hfspeech.data.streaming import StreamedClipError
from hfspeech.evaluation.metrics import ClassificationMetrics, MultiLabelMetrics, make_compute_metrics
from hfspeech.training.trainer import AudioClassificationTrainer


def test_metrics_write_nothing_in_the_evaluate_cache(tmp_path, monkeypatch):
    cache = tmp_path / "metrics"
    monkeypatch.setattr(evaluate.config, "HF_METRICS_CACHE", str(cache))
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 0.2], [0.1, 0.0, 1.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 2, 1])
    single = make_compute_metrics(3)(EvalPrediction(predictions=logits, label_ids=labels))
    multi_config = PretrainedConfig(problem_type="multi_label_classification", num_labels=3)
    multi = make_compute_metrics(3, multi_config)(EvalPrediction(predictions=logits, label_ids=np.eye(3)[labels]))
    report = ClassificationMetrics().compute(predictions=[0, 1, 1], references=[0, 1, 2], labels=[0, 1, 2])
    MultiLabelMetrics().compute(predictions=np.eye(3), references=np.eye(3, dtype=np.int64), per_class=True)

    assert single["accuracy"] == 0.75 and 0 < multi["map_macro"] <= 1 and report["accuracy"] == 2 / 3
    assert not cache.exists(), sorted(str(path.relative_to(cache)) for path in cache.rglob("*"))


def test_an_audio_file_error_crosses_processes_whole():
    """Decoding with `--preprocessing_num_workers N` raises in a worker and sends the error back pickled: an
    error that could not be rebuilt there killed the pool's result thread and the run hung, holding its
    workers, instead of naming the file."""
    error = pickle.loads(pickle.dumps(AudioFileError("clips/a.wav", "cannot be decoded as audio")))
    streamed = pickle.loads(pickle.dumps(StreamedClipError("clips/b.wav", "empty file")))

    assert (type(error), error.path, error.problem, str(error)) == (
        AudioFileError, "clips/a.wav", "cannot be decoded as audio", "clips/a.wav: cannot be decoded as audio")
    assert (type(streamed), streamed.path, streamed.problem) == (StreamedClipError, "clips/b.wav", "empty file")


def test_a_corrupt_file_decoded_by_worker_processes_is_one_line_naming_it(tmp_path):
    folder = write_tone_folder(tmp_path / "tones", clips_per_class=3, rates=(16000,))
    (folder / "low" / "zz_corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    code = ("import sys; from hfspeech.cli import main; sys.exit(main(['train', '--data_dir', sys.argv[1], "
            "'--output_dir', sys.argv[2], '--model_type', 'cnn', '--preprocessing_num_workers', '2']))")
    run = subprocess.Popen([sys.executable, "-c", code, str(folder), str(tmp_path / "run")], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                           env={**os.environ, "HF_HOME": str(tmp_path / "hf")})
    try:  # a hang is the failure guarded against: the timeout turns it into a failed test, its workers ended
        _, stderr = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()

    assert run.returncode == 2, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith(f"error: {folder / 'low' / 'zz_corrupt.wav'}: ")


class _StopAtStep(TrainerCallback):
    """Ctrl-C in a notebook cell: KeyboardInterrupt raised in the middle of training."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt


class _Clips(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        return {"input_values": torch.full((4000,), index / 64.0), "labels": index % 2}


def _child_processes() -> list[int]:
    me = str(os.getpid())
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                children.append(int(pid))
        except (OSError, IndexError):  # ended meanwhile
            pass
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts child processes in /proc")
def test_an_interrupted_run_leaves_no_dataloader_workers_while_its_traceback_is_kept(tmp_path):
    """A notebook keeps the last traceback (`sys.last_traceback`, for %debug): its frames held the batch
    iterator, and with it the run's DataLoader worker processes and their pipes, until the next error."""
    model = AutoModelForAudioClassification.from_pretrained(
        save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, num_train_epochs=1,
                             dataloader_num_workers=2, report_to=[], save_strategy="no", use_cpu=True,
                             disable_tqdm=True)
    trainer = AudioClassificationTrainer(model=model, args=args, train_dataset=_Clips(), callbacks=[_StopAtStep()])
    before = set(_child_processes())
    try:
        trainer.train()
    except KeyboardInterrupt:
        kept = sys.exc_info()[2]  # what IPython keeps

    assert kept is not None and set(_child_processes()) - before == set()
