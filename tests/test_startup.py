"""Start-up cost: what `import hfspeech` and the ONNX predict path import, checked in fresh processes.

`import hfspeech` (which `hfspeech --help` runs) and `import hfspeech.models` import neither torch nor
transformers; the baselines register with the Auto classes when first used. `hfspeech predict` on an ONNX
export runs without torch and transformers (config.json read as JSON, `WaveformPreprocessor` in numpy), and
`WaveformPreprocessor` gives bit for bit what the transformers feature extractors give. `evaluate` (whose package
imports transformers' pipelines: 7.7 CPU s) and audiomentations are imported only where asked for: scoring and a
training run that does not augment call `evaluation.metrics`' functions, whose numbers are evaluate's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from transformers import Wav2Vec2FeatureExtractor

from hfspeech.features.feature_extraction import WaveformFeatureExtractor
from hfspeech.features.waveform import WaveformPreprocessor
from tests.conftest import save_random_baseline, synth_clip, write_tone_folder

HEAVY = ("torch", "transformers", "datasets", "sklearn", "optimum")
LOADED = "import json, sys; print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"


def imported_after(code: str) -> list[str]:
    """The heavy packages in sys.modules after running `code` in a fresh interpreter."""
    script = code + "\n" + LOADED.format(heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_package_and_its_cli_is_light():
    """Both in one process: the imports, then `hfspeech --help`; a heavy package either brought stays loaded."""
    assert imported_after("import hfspeech, hfspeech.cli, hfspeech.models, hfspeech.inference.classifier\n"
                          "assert hfspeech.cli.main(['--help']) == 0") == []


def test_model_classes_register_with_the_auto_classes_on_first_use(tmp_path):
    save_random_baseline(tmp_path, "cnn", ["a", "b"], 0.02, n_mels=16, conv_channels=[4])
    code = (f"import hfspeech.models\nfrom transformers import AutoConfig\n"
            f"try:\n    AutoConfig.from_pretrained({str(tmp_path)!r})\nexcept ValueError:\n    print('unknown')\n"
            f"hfspeech.models.register()\nprint(type(AutoConfig.from_pretrained({str(tmp_path)!r})).__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["unknown", "CNNAudioConfig"], result.stderr[-2000:]


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    from hfspeech.export import export_onnx

    root = tmp_path_factory.mktemp("startup")
    model = save_random_baseline(root / "cnn", "cnn", ["low", "high", "noise"], 0.5, n_mels=16, conv_channels=[4, 8],
                                 max_length_seconds=0.5)
    return model, export_onnx(model, root / "onnx").parent


def test_onnx_predict_imports_neither_torch_nor_transformers(onnx_export, tmp_path):
    model, onnx_dir = onnx_export
    clip = tmp_path / "clip.wav"
    sf.write(clip, synth_clip("high", np.random.default_rng(0), 16000, 1.3), 16000)
    code = f"from hfspeech.cli import main\nassert main(['predict', {str(onnx_dir)!r}, {str(clip)!r}, '--json']) == 0"
    assert imported_after(code) == []
    # The same prediction as PyTorch's, which the light path must not have changed.
    from hfspeech.inference.classifier import AudioClassifier

    light = AudioClassifier.from_pretrained(str(onnx_dir)).classify_file(str(clip))
    reference = AudioClassifier.from_pretrained(str(model)).classify_file(str(clip))
    assert light.labels == reference.labels
    np.testing.assert_allclose(light.scores, reference.scores, atol=1e-5)


def test_pytorch_predict_skips_scikit_learn_and_the_library_leaves_transformers_alone(onnx_export, tmp_path):
    model, _ = onnx_export
    clip = tmp_path / "clip.wav"
    sf.write(clip, synth_clip("low", np.random.default_rng(1), 16000, 0.8), 16000)
    code = f"from hfspeech.cli import main\nassert main(['predict', {str(model)!r}, {str(clip)!r}, '--json']) == 0"
    assert imported_after(code) == ["torch", "transformers"]
    code = (f"from hfspeech.inference.classifier import AudioClassifier\n"
            f"AudioClassifier.from_pretrained({str(model)!r}).classify_file({str(clip)!r})")
    assert "sklearn" in imported_after(code)  # as transformers imports it: only the CLI's process skips it


SCORED_WITHOUT_EVALUATE = """
import json, sys
from types import SimpleNamespace
import numpy as np
from hfspeech.cli import main
code = main(['evaluate', {onnx!r}, '--data_dir', {data!r}, '--output_dir', {scored!r}])
scoring = sorted(m for m in ('evaluate', 'hfspeech.data.transforms') if m in sys.modules)
import hfspeech.training.run
from hfspeech.evaluation.metrics import make_compute_metrics
logits = np.array({logits!r})
single = make_compute_metrics(3)(SimpleNamespace(predictions=logits, label_ids=np.array([0, 2, 1, 1])))
config = SimpleNamespace(problem_type="multi_label_classification", id2label={{0: "a", 1: "b", 2: "c"}})
multi = make_compute_metrics(3, config)(SimpleNamespace(predictions=logits, label_ids=np.array({truth!r})))
training = sorted(m for m in ('evaluate', 'audiomentations', 'hfspeech.data.augment') if m in sys.modules)
print(json.dumps([code, scoring, training, single, multi]))
"""


def test_scoring_and_training_import_neither_evaluate_nor_the_augmenter_and_give_evaluates_numbers(onnx_export,
                                                                                                     tmp_path):
    """One fresh process: `hfspeech evaluate` of the ONNX export, then training's modules and `compute_metrics`."""
    import evaluate

    from hfspeech.evaluation.metrics import ClassificationMetrics, MultiLabelMetrics

    logits = [[2.0, 0.1, 0.0], [0.0, 1.0, 3.0], [0.3, 0.2, 0.1], [0.0, 2.0, 1.0]]
    truth = [[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 1, 0]]
    data = write_tone_folder(tmp_path / "tones", clips_per_class=2, rates=(16000,))
    script = SCORED_WITHOUT_EVALUATE.format(onnx=str(onnx_export[1]), data=str(data), scored=str(tmp_path / "scored"),
                                            logits=logits, truth=truth)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    code, scoring, training, single, multi = json.loads(done.stdout.splitlines()[-1])
    assert (code, scoring, training) == (0, [], [])
    assert json.loads((tmp_path / "scored" / "train_metrics.json").read_text())["num_clips"] == 6
    # evaluate's own path (its Arrow tables), through the `evaluate.Metric` forms
    assert single == evaluate.Metric.compute(ClassificationMetrics(), predictions=[0, 2, 0, 1], references=[0, 2, 1, 1],
                                             labels=[0, 1, 2])
    assert multi == evaluate.Metric.compute(MultiLabelMetrics(), predictions=1 / (1 + np.exp(-np.array(logits))),
                                            references=truth)
    assert single["accuracy"] == 0.75 and multi["map_num_classes"] == 3


@pytest.mark.parametrize("extractor", [WaveformFeatureExtractor(), Wav2Vec2FeatureExtractor(),
                                       Wav2Vec2FeatureExtractor(return_attention_mask=True, padding_value=0.5),
                                       Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True)])
def test_waveform_preprocessor_gives_what_the_transformers_extractor_gives(extractor, tmp_path):
    extractor.save_pretrained(tmp_path)
    light = WaveformPreprocessor.from_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    for lengths in ([1000], [1600, 333, 4000], [7, 7]):
        clips = [(rng.standard_normal(n) * 0.3 + 0.1).astype(np.float32) for n in lengths]
        expected = dict(extractor(clips, sampling_rate=16000, padding="longest", return_tensors="np"))
        got = light(clips, sampling_rate=16000, padding="longest", return_tensors="np")
        assert set(got) == set(expected)
        for name, value in expected.items():
            assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name


def test_waveform_preprocessor_checks_what_the_hfspeech_extractor_checks(tmp_path):
    WaveformFeatureExtractor().save_pretrained(tmp_path)
    light = WaveformPreprocessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="input 1: audio contains NaN"):
        light([np.ones(10), np.array([0.0, np.nan])], sampling_rate=16000)
    with pytest.raises(ValueError, match="sampling rate of 16000 Hz, got 8000"):
        light([np.ones(10)], sampling_rate=8000)
