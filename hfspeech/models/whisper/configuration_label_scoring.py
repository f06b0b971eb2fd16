"""Config of `WhisperForLabelScoring`: a Whisper config plus the token ids of every label's spellings.

The token ids are stored, not just the words, so a saved classifier needs no tokenizer to load or run: the
prompt (`<|startoftranscript|>` ... `<|notimestamps|>`) and each label's spellings (`models.label_words`) are
tokenized once, when the classifier is built from a Whisper checkpoint (`label_scoring_config`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from transformers import WhisperConfig

from hfspeech.models.label_words import spoken_forms
from hfspeech.models.whisper.vocabulary import is_multilingual

MODEL_TYPE = "whisper-label-scoring"


class WhisperLabelScoringConfig(WhisperConfig):
    """`prompt_ids`: the decoder prompt; `label_forms[i]`: label i's spellings; `label_form_ids[i]`: their token
    ids (without end of text, which every form is scored with)."""

    model_type = MODEL_TYPE

    def __init__(self, prompt_ids: Optional[Sequence[int]] = None,
                 label_forms: Optional[Sequence[Sequence[str]]] = None,
                 label_form_ids: Optional[Sequence[Sequence[Sequence[int]]]] = None, **kwargs):
        super().__init__(**kwargs)
        self.prompt_ids = list(prompt_ids or [])
        self.label_forms = [list(forms) for forms in label_forms or []]
        self.label_form_ids = [[list(ids) for ids in forms] for forms in label_form_ids or []]


def label_scoring_config(whisper_config: WhisperConfig, tokenizer, label_names: Sequence[str],
                         **config_values) -> WhisperLabelScoringConfig:
    """A Whisper checkpoint's config turned into a label scorer's for `label_names`, with the checkpoint's
    tokenizer; a multilingual checkpoint is prompted to transcribe English without timestamps."""
    if is_multilingual(whisper_config.vocab_size):  # language and task tokens in the prompt
        tokenizer.set_prefix_tokens(language="en", task="transcribe", predict_timestamps=False)
    forms = [spoken_forms(name) for name in label_names]
    form_ids = [[tokenizer.encode(form, add_special_tokens=False) for form in label] for label in forms]
    values = {**whisper_config.to_dict(), **config_values}
    for key in ("model_type", "architectures", "transformers_version"):
        values.pop(key, None)
    return WhisperLabelScoringConfig(prompt_ids=list(tokenizer.prefix_tokens), label_forms=forms,
                                     label_form_ids=form_ids, **values)
