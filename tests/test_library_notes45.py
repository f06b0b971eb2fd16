"""torch's note on WavLM's two mask types ("Support for mismatched key_padding_mask and attn_mask is deprecated")
printed above `hfspeech predict`'s results and in training (`models.library_notes`); other warnings still show."""

from __future__ import annotations

import warnings

import numpy as np
import soundfile as sf
import torch

from hfspeech.cli import main
from hfspeech.models.library_notes import MISMATCHED_MASKS_NOTE
from hfspeech.synthetic.tiny import save_tiny_ssl_model
from hfspeech.training.arguments import ModelArguments
from hfspeech.training.model_setup import build_model


def notes_of(caught) -> list[str]:
    return [str(each.message) for each in caught if MISMATCHED_MASKS_NOTE in str(each.message)]


def test_a_wavlm_predicts_and_trains_without_torchs_mask_note_and_other_warnings_still_show(tmp_path, capsys):
    folder = save_tiny_ssl_model(str(tmp_path / "wavlm"), "wavlm", labels=["no", "yes"])
    clips = []
    for seconds in (1.0, 0.5):  # two lengths: a padded batch
        clips.append(str(tmp_path / f"{seconds}.wav"))
        sf.write(clips[-1], np.random.default_rng(0).standard_normal(int(16000 * seconds)).astype("float32") * 0.1,
                 16000)
    with warnings.catch_warnings(record=True) as predicting:  # (each block starts from the filters before it)
        warnings.simplefilter("always")
        assert main(["predict", str(folder), *clips]) == 0
        warnings.warn("another note of torch's", UserWarning)
    with warnings.catch_warnings(record=True) as training:
        warnings.simplefilter("always")
        model, _ = build_model(ModelArguments(model_name_or_path=str(folder)), ["no", "yes"])
        model(torch.zeros(2, 8000), attention_mask=torch.tensor([[1] * 8000, [1] * 4000 + [0] * 4000]))
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert notes_of(predicting) == [] and notes_of(training) == []
    assert "another note of torch's" in [str(each.message) for each in predicting]
