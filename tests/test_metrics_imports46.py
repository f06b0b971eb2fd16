"""`evaluate` (whose package imports transformers' pipelines: 7.7 CPU s) is imported only where its `Metric` classes
are asked for: training's `compute_metrics`, the report files, cross-validation's pooling and `hfspeech evaluate`
call `evaluation.metrics`' functions, whose numbers the `evaluate.Metric` forms give too."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import save_random_baseline, write_tone_folder

NUMBERS_WITHOUT_EVALUATE = """
import json, sys
from types import SimpleNamespace
import numpy as np
import hfspeech.evaluation.evaluate_model, hfspeech.evaluation.report, hfspeech.training.cross_validation_pooled
from hfspeech.evaluation.metrics import make_compute_metrics
logits = np.array([[2.0, 0.1, 0.0], [0.0, 1.0, 3.0], [0.3, 0.2, 0.1], [0.0, 2.0, 1.0]])
single = make_compute_metrics(3)(SimpleNamespace(predictions=logits, label_ids=np.array([0, 2, 1, 1])))
multi_config = SimpleNamespace(problem_type="multi_label_classification", id2label={0: "a", 1: "b", 2: "c"})
truth = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
multi = make_compute_metrics(3, multi_config)(SimpleNamespace(predictions=logits, label_ids=truth))
before = "evaluate" in sys.modules
import evaluate
from hfspeech.evaluation.metrics import ClassificationMetrics, MultiLabelMetrics
assert isinstance(ClassificationMetrics(), evaluate.Metric) and isinstance(MultiLabelMetrics(), evaluate.Metric)
as_metrics = [evaluate.Metric.compute(ClassificationMetrics(), predictions=[0, 2, 0, 1], references=[0, 2, 1, 1],
                                      labels=[0, 1, 2]),
              evaluate.Metric.compute(MultiLabelMetrics(), predictions=1 / (1 + np.exp(-logits)), references=truth)]
print(json.dumps([before, single, multi, as_metrics]))
"""


def test_metrics_reports_and_pooling_import_no_evaluate_and_give_evaluates_numbers():
    done = subprocess.run([sys.executable, "-c", NUMBERS_WITHOUT_EVALUATE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    before, single, multi, (single_metric, multi_metric) = json.loads(done.stdout.splitlines()[-1])
    assert before is False
    assert single == single_metric and single["accuracy"] == 0.75
    assert multi == multi_metric and multi["map_num_classes"] == 3


def test_evaluating_an_onnx_export_imports_no_evaluate(tmp_path):
    from hfspeech.export import export_onnx

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["high", "low", "noise"], 0.5, n_mels=16,
                                 conv_channels=[4], max_length_seconds=0.5)
    onnx_dir = export_onnx(model, tmp_path / "onnx").parent
    data = write_tone_folder(tmp_path / "tones", clips_per_class=2, rates=(16000,))
    script = (f"import json, sys\nfrom hfspeech.cli import main\n"
              f"code = main(['evaluate', {str(onnx_dir)!r}, '--data_dir', {str(data)!r}, "
              f"'--output_dir', {str(tmp_path / 'scored')!r}])\n"
              f"print(json.dumps([code, 'evaluate' in sys.modules, 'hfspeech.data.transforms' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [0, False, False]
    written = json.loads((tmp_path / "scored" / "train_metrics.json").read_text())
    assert written["num_clips"] == 6 and 0.0 <= written["accuracy"] <= 1.0
