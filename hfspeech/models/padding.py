"""Zeroing the frames past each clip's end in the convolutional baselines, and skipping it when none is padded.

The CNN and BC-ResNet multiply their feature maps by the frame mask before every convolution or pooling that
mixes frames: that is what gives a clip the same logits alone and in a padded batch. In a batch where no clip
is padded (one clip; equal-length windows of a long file; most batches) the mask is all ones and the products
change nothing, so the models skip them. They are cheap in PyTorch but not in onnxruntime, where each one
breaks the chain of NCHWc convolutions with two layout reorders (the demo CNN: ~25% of its time at one thread,
measured 2026-12-02); the CNN's ONNX export therefore stores both graphs and picks one per batch
(`hfspeech.export.unpadded_branch`). While tracing (TorchScript, ONNX) the models always zero the padding,
unless `skip_padding_masks` is set: a trace records one branch and replays it for every batch. Under
`torch.compile` they always zero it too: reading the mask's values into a Python `bool` is a graph break (and a
long dynamo warning) on every call, the products are exact either way, and inductor fuses each one into the
elementwise kernel beside it, so one graph serves padded and unpadded batches (`fullgraph=True` works).
"""

from typing import Optional

import torch


class PaddingMasks:
    """Mixin for the encoders that zero padded frames."""

    skip_padding_masks = False  # True only while the ONNX export traces the graph for unpadded batches
    # Whether the ONNX export stores that second graph (`hfspeech.export.unpadded_branch`): worth it where
    # the masks cost much and the file size matters little.
    onnx_unpadded_branch = False

    def zeroes_padding(self, attention_mask: Optional[torch.Tensor]) -> bool:
        """Whether this batch needs its padded frames zeroed: not when no clip is padded (exact: the products
        would multiply by ones); always while tracing or compiling, unless the export asked for the unpadded graph."""
        if self.skip_padding_masks:
            return False
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return True
        return attention_mask is not None and not bool(attention_mask.all())


def zero_padding(x: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``x`` ``[B, C, F, T]`` with the frames past each clip's length set to 0; unchanged when ``frame_mask``
    is None (no clip padded)."""
    return x if frame_mask is None else x * frame_mask[:, None, None, :].to(x.dtype)
