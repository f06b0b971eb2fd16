"""`benchmarks/pretrained.py` and `benchmarks/whisper_label_words.py` as a careless user meets them.

- `--resume` on results measured elsewhere: every row keeps the machine it was measured on (the file's
  `machine` is this session's), and a file that is not a results file is one line, not a traceback;
- `whisper_label_words.py --batch` larger than a fold's training set is one line naming the flag, before the
  clips are computed, not a ZeroDivisionError after the zero-shot pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import pretrained, whisper_label_words  # noqa: E402

from hfspeech.errors import UsageError  # noqa: E402

ELSEWHERE = {"cpu": "a machine far away", "cpu_count": 64, "torch_threads": 32}


def resume_args(tmp_path: Path, output: Path) -> Namespace:
    return Namespace(output=output, work_dir=tmp_path / "work", resume=True)


def test_resume_keeps_the_machine_each_row_was_measured_on(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "FSDD", tmp_path)  # only has to be there
    output = tmp_path / "pretrained.json"
    output.write_text(json.dumps({"machine": ELSEWHERE, "runs": {"fsdd/cnn/george": {"test_accuracy": 0.9}}}))
    results = pretrained.start_results(resume_args(tmp_path, output))
    pretrained.record(results, output, "fsdd/cnn/jackson", {"test_accuracy": 0.8})
    saved = json.loads(output.read_text())
    assert saved["runs"]["fsdd/cnn/george"]["machine"] == ELSEWHERE  # measured there, not here
    here = saved["runs"]["fsdd/cnn/jackson"]["machine"]
    assert here["cpu_count"] == os.cpu_count() and here == saved["machine"]
    assert saved["runs"]["fsdd/cnn/george"]["test_accuracy"] == 0.9

    results = pretrained.start_results(resume_args(tmp_path, output))  # resumed again, on a third machine
    monkeypatch.setitem(results["machine"], "cpu", "a third machine")
    pretrained.record(results, output, "fsdd/cnn/lucas", {"test_accuracy": 0.7})
    rows = json.loads(output.read_text())["runs"]
    assert [rows[f"fsdd/cnn/{fold}"]["machine"]["cpu"] for fold in ("george", "jackson", "lucas")] == [
        "a machine far away", here["cpu"], "a third machine"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"runs": [1]}'])
def test_resume_from_a_file_that_is_not_results_is_one_line(monkeypatch, tmp_path, text):
    monkeypatch.setattr(pretrained, "FSDD", tmp_path)
    output = tmp_path / "pretrained.json"
    output.write_text(text)
    with pytest.raises(UsageError, match="--output .*pretrained.json") as error:
        pretrained.start_results(resume_args(tmp_path, output))
    assert "\n" not in str(error.value)
    assert output.read_text() == text  # nothing the user had is overwritten


class TinyScorer(torch.nn.Module):
    """Stands in for `WhisperForLabelScoring` (the loop is under test): features -> ten logits."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 10)

    def forward(self, features, labels=None):
        logits = self.linear(features)
        return Namespace(logits=logits, loss=torch.nn.functional.cross_entropy(logits, labels))


def label_words_args(batch: int) -> Namespace:
    return Namespace(seed=0, learning_rate=1e-3, epochs=1, batch=batch)


def test_fine_tune_refuses_a_batch_larger_than_the_training_set():
    import numpy as np

    features, labels = np.ones((3, 4), dtype=np.float32), np.arange(3)
    with pytest.raises(UsageError, match="--batch 8: larger than the 3 training clips"):
        whisper_label_words.fine_tune(TinyScorer(), features, labels, label_words_args(8))
    scorer = TinyScorer()
    before = scorer.linear.weight.detach().clone()
    whisper_label_words.fine_tune(scorer, features, labels, label_words_args(3))  # the whole set: one step
    assert not torch.equal(before, scorer.linear.weight)


def test_label_words_checks_batch_against_the_folds_before_any_work(monkeypatch, tmp_path):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for speaker, takes in (("george", 5), ("jackson", 3), ("lucas", 2)):
        for take in range(takes):
            (recordings / f"1_{speaker}_{take}.wav").write_bytes(b"never decoded")
    monkeypatch.setattr(whisper_label_words, "FSDD", recordings)
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="--batch 6: larger than the 5 training clips"):  # george out: 3 + 2 left
        whisper_label_words.main(["--batch", "6", "--speakers", "george", "lucas", "--output", str(out)])
    assert not out.exists()
    whisper_label_words.check_batch_fits_every_fold(Namespace(batch=5, epochs=1, speakers=["george", "lucas"]))
    whisper_label_words.check_batch_fits_every_fold(Namespace(batch=99, epochs=0, speakers=["george"]))  # no training


@pytest.mark.skipif(not pretrained.FSDD.is_dir(), reason="needs ../shared/data/fsdd")
def test_label_words_batch_above_the_real_training_set_is_one_line(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "whisper_label_words.py"), "--batch", "1501",
               "--output", str(tmp_path / "out")]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                env=dict(os.environ, HF_HUB_OFFLINE="1"))
    except subprocess.TimeoutExpired:
        pytest.fail("--batch 1501 started the measuring instead of refusing")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --batch 1501: larger than the 1500 training clips of a fold; give at most 1500")
