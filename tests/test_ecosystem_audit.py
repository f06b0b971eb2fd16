"""What a transformers user does with a model folder hfspeech saved, beyond `pipeline()`: cast it, push it, load it.

Each test here failed before its fix (ecosystem audit, 2026-12-04).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.conftest import save_random_baseline

LABELS = ["low", "high", "noise"]


def clips(sampling_rate: int = 16000) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (sampling_rate // 4, sampling_rate // 10)]


@pytest.fixture(scope="module", params=["cnn", "lstm"])
def baseline_folder(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    extra = {"conv_channels": [4, 8], "n_mels": 16} if request.param == "cnn" else {"lstm_hidden_size": 8, "num_lstm_layers": 1, "n_mels": 16, "n_mfcc": 8}
    return save_random_baseline(folder, request.param, LABELS, 0.2, **extra)


def logits_of(model, feature_extractor, dtype=torch.float32) -> torch.Tensor:
    inputs = feature_extractor(clips(), sampling_rate=16000, padding=True, return_tensors="pt")
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.no_grad():
        return model(**inputs).logits.float()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_baseline_cast_with_to_dtype_runs_and_comes_back_exact(baseline_folder, dtype):
    """`model.half()` / `model.to(torch.bfloat16)` (what `--fp16_full_eval` does) cast the front end's fixed DFT
    and mel matrices too: the float32 front end then failed ("expected m1 and m2 to have the same dtype"), and a
    cast back to float32 kept them rounded. The front end keeps its constants float32 whatever the model's dtype."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from hfspeech.models import register

    register()
    extractor = AutoFeatureExtractor.from_pretrained(baseline_folder)
    reference = logits_of(AutoModelForAudioClassification.from_pretrained(baseline_folder).eval(), extractor)
    model = AutoModelForAudioClassification.from_pretrained(baseline_folder).eval().to(dtype)
    cast = logits_of(model, extractor, dtype)
    assert torch.allclose(cast, reference, atol=0.05), (cast, reference)
    float_inputs = logits_of(model, extractor)  # the front end's float32 features reach the layers in their dtype
    assert torch.allclose(float_inputs, reference, atol=0.05), (float_inputs, reference)
    loaded_in_dtype = AutoModelForAudioClassification.from_pretrained(baseline_folder, torch_dtype=dtype).eval()
    assert torch.equal(logits_of(loaded_in_dtype, extractor, dtype), cast)  # one answer for both ways to get there
    model.float()
    frontend = next(module for module in model.modules() if type(module).__name__ == "AudioFrontend")
    fresh = type(frontend)(model.config)
    assert all(torch.equal(getattr(frontend, name), constant) for name, constant in fresh.named_buffers())


def test_push_to_hub_of_a_model_whose_repo_would_lack_its_code_says_so(baseline_folder, monkeypatch, caplog,
                                                                        tmp_path):
    """`model.push_to_hub(repo)` on a model of hfspeech's registered classes uploads config and weights only: the
    repo then failed to load without hfspeech (`trust_remote_code=True` or not) and nothing said so. It still
    pushes (with hfspeech installed the repo loads), and warns, naming `hfspeech push`. No network: the upload
    is replaced by a listing of what would go."""
    import transformers.utils.hub as transformers_hub
    from huggingface_hub import ModelCard
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from hfspeech.models import register

    register()
    uploaded = {}
    monkeypatch.setattr(transformers_hub.PushToHubMixin, "_create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(transformers_hub.PushToHubMixin, "_upload_modified_files",
                        lambda self, folder, repo_id, *args, **kwargs: uploaded.update(
                            {type(self).__name__: sorted(os.listdir(folder))}))
    monkeypatch.setattr(transformers_hub, "create_and_tag_model_card", lambda *args, **kwargs: ModelCard(""))
    monkeypatch.chdir(tmp_path)
    for loaded in (AutoModelForAudioClassification.from_pretrained(baseline_folder),
                   AutoFeatureExtractor.from_pretrained(baseline_folder)):
        caplog.clear()
        loaded.push_to_hub("me/kws")
        assert not any(name.endswith(".py") for name in uploaded[type(loaded).__name__])
        assert "uploads no model code" in caplog.text and "hfspeech push RUN --repo_id me/kws" in caplog.text
