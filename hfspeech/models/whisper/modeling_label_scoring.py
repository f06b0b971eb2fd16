"""Whisper's decoder as the classifier: the logit of a label is the decoder's likelihood of the label's words.

`WhisperForAudioClassification` keeps the encoder and learns a new linear head; trained on three FSDD speakers
it stops at about 0.97 on a fourth, because what the encoder's states say about "six" is learned again from
three voices. The decoder already knows how 680,000 hours of speakers say it. Here

    logit[label] = log sum over the label's spellings of P(spelling, end of text | prompt, audio)

(`models.label_words` lists the spellings), which names spoken words zero-shot and trains with cross-entropy
like any classifier, every weight at once. The weights are `WhisperForConditionalGeneration`'s, under the same
names, so an ASR checkpoint loads into it as it is; the encoder is cut to the clip (`modeling_whisper`).

Cost: one decoder sequence per spelling and clip. They are packed into one decoder input per clip, after a
single copy of the prompt (each attends to the prompt and to itself only), so the encoder's states are
projected for the cross-attention once per clip and the prompt runs once; the decoder is causal, so two
spellings that share a beginning (" Six" and " Six.") share their states and only the longest run; and the
vocabulary projection, most of the work, runs once per distinct prefix.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn
from transformers import WhisperModel, WhisperPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from hfspeech.features.hub_push import CodelessPushWarning
from hfspeech.models.whisper.configuration_label_scoring import WhisperLabelScoringConfig


class ScoringPlan(NamedTuple):
    """Which decoder states score which tokens, as index tensors (`plan_scoring`)."""
    inputs: torch.Tensor      # [tokens] decoder input ids: the prompt once, then the longest spellings
    positions: torch.Tensor   # [tokens] each token's position in its own sequence (the prompt's: 0, 1, ...)
    sequence: torch.Tensor    # [tokens] which sequence it belongs to (-1: the prompt, which every sequence sees)
    prefix_end: torch.Tensor  # [prefixes] where each distinct prefix ends: its state predicts the next token
    step_prefix: torch.Tensor  # [steps] each scored token (a spelling's tokens, then end of text): its prefix ...
    step_token: torch.Tensor   # [steps] ... the token
    step_form: torch.Tensor    # [steps] ... the spelling it belongs to
    form_label: torch.Tensor   # [forms] the label each spelling belongs to


def longest_sequences(sequences) -> list[tuple[int, ...]]:
    """The distinct sequences that are not the start of another, longest first."""
    rows: list[tuple[int, ...]] = []
    for sequence in sorted(set(sequences), key=len, reverse=True):
        if not any(row[:len(sequence)] == sequence for row in rows):
            rows.append(sequence)
    return rows


def plan_scoring(prompt: list[int], label_form_ids: list[list[list[int]]], end_of_text: int) -> ScoringPlan:
    """Index tensors for `WhisperForLabelScoring.label_logits`. The spellings are packed into one decoder input
    per clip after one copy of the prompt; each attends to the prompt and to itself only (the decoder is causal,
    so the prompt's states are the same for all). A spelling that is the start of another is not run on its own
    (its states are the other's first ones)."""
    forms = [(label, tuple(ids)) for label, spellings in enumerate(label_form_ids) for ids in spellings]
    rows = longest_sequences(ids for _, ids in forms)
    starts = [len(prompt) + sum(map(len, rows[:index])) for index in range(len(rows))]
    prefix_end = {(): len(prompt) - 1}
    for row, start in reversed(list(zip(rows, starts))):
        prefix_end.update({row[:end]: start + end - 1 for end in range(1, len(row) + 1)})
    prefix_index = {prefix: index for index, prefix in enumerate(prefix_end)}
    steps = [(prefix_index[ids[:end]], ids[end] if end < len(ids) else end_of_text, form)
             for form, (_, ids) in enumerate(forms) for end in range(len(ids) + 1)]
    long = lambda values: torch.tensor(list(values), dtype=torch.long)  # noqa: E731
    return ScoringPlan(long(prompt + [token for row in rows for token in row]),
                       long([*range(len(prompt)), *(len(prompt) + i for row in rows for i in range(len(row)))]),
                       long([-1] * len(prompt) + [index for index, row in enumerate(rows) for _ in row]),
                       long(prefix_end.values()), *(long(column) for column in zip(*steps)),
                       long(label for label, _ in forms))


class WhisperForLabelScoring(CodelessPushWarning, WhisperPreTrainedModel):
    """Whisper (encoder, decoder, tied vocabulary projection) returning one logit per label."""

    config_class = WhisperLabelScoringConfig
    base_model_prefix = "model"
    main_input_name = "input_features"
    _tied_weights_keys = ["proj_out.weight"]
    _keys_to_ignore_on_save = ["proj_out.weight"]  # tied to the token embeddings: the Trainer re-ties on loading

    def __init__(self, config: WhisperLabelScoringConfig):
        super().__init__(config)
        self.model = WhisperModel(config)
        self.proj_out = nn.Linear(config.d_model, config.vocab_size, bias=False)
        plan = plan_scoring(config.prompt_ids, config.label_form_ids, config.eos_token_id)
        for name, tensor in plan._asdict().items():  # not saved: config.json holds what they are made from
            self.register_buffer(name, tensor, persistent=False)
        self.register_buffer("step_in_form", (plan.step_form[:, None] == torch.arange(len(plan.form_label))).float(),
                             persistent=False)
        self.register_buffer("form_mask", torch.where(
            plan.form_label[None, :] == torch.arange(len(config.label_form_ids))[:, None], 0.0, -torch.inf),
            persistent=False)
        # the packed decoder input's attention: each token sees the prompt and the earlier tokens of its sequence
        self.register_buffer("within_sequence", ((plan.sequence[:, None] == plan.sequence[None, :])
                                                 | (plan.sequence[None, :] == -1))
                             & (plan.positions[:, None] >= plan.positions[None, :]), persistent=False)
        self.post_init()

    @property
    def encoder(self) -> nn.Module:
        """The encoder, where `modeling_whisper` cuts the positional table and adds SpecAugment."""
        return self.model.encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.proj_out

    def label_logits(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """[clips, labels] from the encoder's [clips, frames, hidden]."""
        # the token embeddings are the same for every clip: looked up once, before the batch is broadcast, so an
        # ONNX export folds them into a [tokens, hidden] constant instead of keeping the whole vocabulary's table
        embeddings = self.model.decoder.embed_tokens(self.inputs)
        hidden = self.model.decoder(inputs_embeds=embeddings.expand(encoder_states.shape[0], -1, -1),
                                    position_ids=self.positions[None],
                                    attention_mask=self._within_sequences(encoder_states.dtype), use_cache=False,
                                    encoder_hidden_states=encoder_states).last_hidden_state
        log_probs = self.proj_out(hidden[:, self.prefix_end]).float().log_softmax(-1)  # [clips, prefixes, vocabulary]
        per_form = log_probs[:, self.step_prefix, self.step_token] @ self.step_in_form  # a sum, as ONNX exports it
        return torch.logsumexp(per_form[:, None, :] + self.form_mask, -1)

    def _within_sequences(self, dtype: torch.dtype) -> torch.Tensor:
        """`within_sequence` as the decoder's 4-D mask: boolean for SDPA; additive (0 or the lowest value) for
        the eager attention, which adds it to the scores."""
        allowed = self.within_sequence[None, None]
        if self.config._attn_implementation == "eager":
            return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
                ~allowed, torch.finfo(dtype).min)
        return allowed

    def forward(self, input_features: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, return_dict: Optional[bool] = None,
                **kwargs) -> SequenceClassifierOutput:
        """`attention_mask` is accepted and ignored, as Whisper's encoder does: every input fills its window."""
        logits = self.label_logits(self.model.encoder(input_features).last_hidden_state)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
