"""hfspeech from a notebook, the transformers way: a model called by hand, `AudioClassifier` given what a
transformers user has at hand. Each test failed before its fix (Python API audit, session 29)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hfspeech.errors import UsageError
from tests.conftest import save_random_baseline

LABELS = ["low", "high", "noise"]
SMALL = {"cnn": {"conv_channels": [4, 8], "n_mels": 16},
         "lstm": {"lstm_hidden_size": 8, "num_lstm_layers": 1, "n_mels": 16, "n_mfcc": 8},
         "bcresnet": {}}


@pytest.fixture(scope="module")
def baseline_folders(tmp_path_factory) -> dict[str, Path]:
    """A saved random-weight model of each family, by family."""
    return {family: save_random_baseline(tmp_path_factory.mktemp(family), family, LABELS, 0.2, **SMALL[family])
            for family in sorted(SMALL)}


@pytest.fixture(scope="module", params=sorted(SMALL))
def baseline(request, baseline_folders):
    """(family, a loaded random-weight model of that family, its folder)."""
    from transformers import AutoModelForAudioClassification

    folder = baseline_folders[request.param]
    return request.param, AutoModelForAudioClassification.from_pretrained(folder).eval(), folder


def clip(samples: int = 8000) -> torch.Tensor:
    return 0.1 * torch.randn(samples, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("given, named", [
    (lambda: clip(), r"must be \[batch, samples\], got shape \(8000,\)"),
    (lambda: clip()[None, None], r"must be \[batch, samples\], got shape \(1, 1, 8000\)"),
    (lambda: clip()[None].numpy(), r"must be a torch tensor \[batch, samples\], got ndarray"),
    (lambda: torch.zeros(1, 0), r"holds no samples"),
])
def test_a_baseline_called_by_hand_with_the_wrong_input_says_what_to_pass(baseline, given, named):
    """`model(clip)` with a 1-D clip, `[1, 1, n]` or a numpy array failed deep in the front end ("too many indices
    for tensor of dimension 1", "shape '[1, 53, 160]' is invalid", "'str' object has no attribute 'type'"), and an
    empty `[1, 0]` batch gave logits of nothing. A one-line ValueError names the shape (or type) and the way out."""
    _, model, _ = baseline
    with pytest.raises(ValueError, match=named):
        model(given())
    with torch.no_grad():
        assert model(clip()[None]).logits.shape == (1, len(LABELS))  # the right shape still runs


def test_an_attention_mask_of_another_length_is_refused_not_dropped(baseline):
    """A mask whose length is not the batch's was dropped unread by the CNN and BC-ResNet when it held only ones,
    and failed deep in the LSTM's front end ("size of tensor a (8000) must match ... (7000)")."""
    _, model, _ = baseline
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 7000\), input_values \(1, 8000\)"):
        model(clip()[None], attention_mask=torch.ones(1, 7000, dtype=torch.long))


def test_predict_proba_of_one_clip_given_alone_asks_for_a_list(baseline):
    """`classifier.predict_proba(waveform)` (one array, as sklearn users call it) went through the clip sample by
    sample and was refused as "waveform 0: ... got shape ()"; a list and a 2-D batch still work."""
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(baseline[2])
    waveform = clip().numpy()
    for one_clip in (waveform, torch.from_numpy(waveform), waveform.tolist()):
        with pytest.raises(UsageError, match=r"expected a list of clips, got one clip .* of 8000 samples\): pass \["):
            classifier.predict_proba(one_clip)
    assert classifier.predict_proba([waveform]).shape == classifier.predict_proba(waveform[None]).shape == (1, 3)


def test_from_pretrained_given_a_loaded_model_points_to_the_constructor(baseline):
    """`AudioClassifier.from_pretrained(model)` failed in pathlib ("expected str, bytes or os.PathLike object")."""
    from hfspeech.inference.classifier import AudioClassifier

    with pytest.raises(UsageError, match=r"got \w+ForAudioClassification: .* AudioClassifier\(model, feature_"):
        AudioClassifier.from_pretrained(baseline[1])


def test_from_pretrained_takes_a_dtype_as_transformers_from_pretrained_does(baseline, tmp_path):
    """`AudioClassifier.from_pretrained(run, dtype=torch.bfloat16)`, the transformers spelling, failed with
    "__init__() got an unexpected keyword argument 'dtype'". The model now loads in that dtype, also from a run
    with a TorchScript twin (float32, so its own weights load instead); an export, of fixed precision, refuses."""
    from hfspeech.export.torchscript_export import write_run_twin
    from hfspeech.inference.classifier import AudioClassifier

    import shutil

    folder = Path(shutil.copytree(baseline[2], tmp_path / "run"))  # the twin is not left for the other tests
    waveform = clip().numpy()
    reference = AudioClassifier.from_pretrained(folder).classify_waveform(waveform).scores
    write_run_twin(folder)
    classifier = AudioClassifier.from_pretrained(folder, dtype=torch.bfloat16)
    assert classifier.backend.model.dtype == torch.bfloat16
    np.testing.assert_allclose(classifier.classify_waveform(waveform).scores, reference, atol=0.05)
    with pytest.raises(UsageError, match=r"dtype=torch.bfloat16: .*torchscript.*\.pt is an export"):
        AudioClassifier.from_pretrained(folder / "torchscript", dtype=torch.bfloat16)


@pytest.mark.parametrize("family, values, named", [
    ("cnn", {"conv_channels": [0, 4]}, r"conv_channels\[0\] must be a whole number >= 1, got 0"),
    ("cnn", {"classifier_dropout": 1.5}, r"classifier_dropout must be a probability in \[0, 1\], got 1.5"),
    ("lstm", {"lstm_hidden_size": 0}, r"lstm_hidden_size must be a whole number >= 1, got 0"),
    ("lstm", {"lstm_dropout": -0.1}, r"lstm_dropout must be a probability in \[0, 1\], got -0.1"),
])
def test_a_config_whose_layers_cannot_be_built_is_refused_naming_the_value(family, values, named):
    """docs/models.md: a config that cannot work is refused when it is made, naming the value. These were made
    and saved, then failed in torch: a CNN block of 0 channels at the first forward ("expected weight to be at
    least 1 at dimension 0"), dropout above 1 building the model ("dropout probability has to be between 0 and
    1", no field named); an LSTM of 0 units was made without a word."""
    from hfspeech.models import BASELINE_MODELS

    with pytest.raises(ValueError, match=named):
        BASELINE_MODELS[family].config_class(**values)


def test_importing_the_pipeline_module_registers_the_baselines(baseline_folders):
    """`from hfspeech.inference.pipeline import audio_classification_pipeline` imports transformers' pipelines
    (and torch), yet registered nothing until the function was called: transformers' own `pipeline()` or
    `AutoConfig` on a run right after said "Transformers does not recognize this architecture". In a fresh
    interpreter, as in a new notebook (one for every family: the import alone registers them all)."""
    import subprocess
    import sys

    code = ("import sys, hfspeech.inference.pipeline; from transformers import AutoConfig; "
            "[print(AutoConfig.from_pretrained(folder).model_type) for folder in sys.argv[1:]]")
    process = subprocess.run([sys.executable, "-c", code, *map(str, baseline_folders.values())], capture_output=True,
                             text=True, timeout=300)
    assert process.stdout.split() == [f"hfspeech-{family}" for family in baseline_folders], process.stderr[-2000:]


@pytest.mark.parametrize("make, named", [
    (lambda tmp_path: tmp_path / "missing", r"missing: model folder not found"),
    (lambda tmp_path: tmp_path, r": not a model folder \(no config.json\)"),
])
def test_the_pipeline_helper_given_a_folder_that_is_not_a_model_says_so_in_one_line(tmp_path, make, named):
    """`audio_classification_pipeline(path)` handed the path to transformers, which said "Repo id must be in the
    form 'repo_name' or 'namespace/repo_name'" for a missing folder and listed its 300 model types for a folder
    without config.json; `AudioClassifier.from_pretrained` had the one-line check all along."""
    from hfspeech.inference.pipeline import audio_classification_pipeline
    from hfspeech.models.loading import NotAModelError

    with pytest.raises(NotAModelError, match=named):
        audio_classification_pipeline(str(make(tmp_path)))


@pytest.mark.parametrize("options, named", [
    ({"batch_size": -1}, r"batch_size must be a whole number of windows, at least 1, got -1"),
    ({"batch_size": 0}, r"batch_size must be a whole number of windows, at least 1, got 0"),
    ({"batch_size": 2.5}, r"batch_size must be a whole number of windows, at least 1, got 2.5"),
    ({"untrained": "ignore"}, r"untrained must be 'warn' or 'error', got 'ignore'"),
])
def test_a_classifier_option_that_cannot_work_is_refused_when_it_is_made(baseline, options, named):
    """`batch_size=-1` ran no batch at all and gave every clip equal scores (1/3 each, top label the first id);
    0 failed in `range()` at the first call, 2.5 with "'float' object cannot be interpreted as an integer"; an
    `untrained` other than "warn" / "error" was taken for "warn"."""
    from hfspeech.inference.classifier import AudioClassifier

    with pytest.raises(UsageError, match=named):
        AudioClassifier.from_pretrained(baseline[2], **options)


@pytest.mark.parametrize("options, named", [
    ({"threshold": 50}, r"threshold must be a score between 0 and 1, got 50"),
    ({"threshold": -1.0}, r"threshold must be a score between 0 and 1, got -1.0"),
    ({"min_windows": 1.5}, r"min_windows must be a whole number of windows, at least 1, got 1.5"),
])
def test_a_streaming_classifier_option_the_stream_command_refuses_is_refused_in_python_too(baseline, options, named):
    """`hfspeech stream --threshold` and the server take a score in [0, 1]; `StreamingClassifier(threshold=50)`
    (a percentage) was kept and never fired an event, -1 fired every label at every window, and
    `min_windows=1.5` was taken for 1."""
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.streaming import StreamingClassifier

    with pytest.raises(UsageError, match=named):
        StreamingClassifier(AudioClassifier.from_pretrained(baseline[2]), **options)
