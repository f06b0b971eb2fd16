"""A library's note that says nothing a user of hfspeech can act on, hidden where the models are built or loaded.

transformers' WavLM attends through `torch.nn.functional.multi_head_attention_forward` with a boolean padding mask
beside a float position bias, and torch 2.x warns "Support for mismatched key_padding_mask and attn_mask is
deprecated. Use same type for both instead." on the first padded batch of every process: `hfspeech predict` and
`stream` of a WavLM classifier printed it above the results (model-family audit MX2), as training did. The code is
transformers', the masks are right (torch converts the boolean one), and no flag of hfspeech's changes it.

Only this message, from the module that warns: any other warning of torch's still shows. The filter is process-wide
(the model is called from the Trainer, the batch loop, the server), as transformers' own notes are once-per-process.
"""

from __future__ import annotations

import warnings

MISMATCHED_MASKS_NOTE = "Support for mismatched key_padding_mask and attn_mask is deprecated"


def hide_mismatched_masks_note() -> None:
    """Hide torch's note on WavLM's two mask types (above); calling it again re-adds the same filter only."""
    warnings.filterwarnings("ignore", message=MISMATCHED_MASKS_NOTE, category=UserWarning,
                            module=r"torch\.nn\.functional$")
