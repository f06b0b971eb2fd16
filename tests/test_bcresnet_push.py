"""BC-ResNet warns on `model.push_to_hub` as the other baselines do (the mixin had missed its class)."""

from __future__ import annotations

from conftest import save_random_baseline


def test_push_to_hub_of_a_bcresnet_says_its_repo_lacks_code(tmp_path, monkeypatch, caplog):
    import transformers.utils.hub as transformers_hub
    from huggingface_hub import ModelCard
    from transformers import AutoModelForAudioClassification

    from hfspeech.models import register

    register()
    uploaded = []
    monkeypatch.setattr(transformers_hub.PushToHubMixin, "_create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(transformers_hub.PushToHubMixin, "_upload_modified_files",
                        lambda self, folder, repo_id, *args, **kwargs: uploaded.append(repo_id))
    monkeypatch.setattr(transformers_hub, "create_and_tag_model_card", lambda *args, **kwargs: ModelCard(""))
    monkeypatch.chdir(tmp_path)
    model = AutoModelForAudioClassification.from_pretrained(
        save_random_baseline(tmp_path / "bc", "bcresnet", ["a", "b"], 0.02))
    model.push_to_hub("me/kws")
    assert uploaded == ["me/kws"]  # it still pushes
    assert "uploads no model code" in caplog.text and "hfspeech push RUN --repo_id me/kws" in caplog.text
