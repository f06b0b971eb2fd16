"""Waveform -> features front end that lives inside the baseline models.

Why in the model and not in the feature extractor: an exported model (ONNX, TorchScript) then
takes raw audio and carries its own feature computation, so serving code cannot drift from
training code. That dictates how the front end is written:

* Plain, exportable ops that are fast in PyTorch, TorchScript and onnxruntime alike: frames are
  cut from the padded waveform as ``hop_length`` blocks laid side by side (slices and a concatenation;
  ``torch.stft`` and ``Tensor.unfold`` export unevenly, an index gather was slow in onnxruntime), only
  the ``win_length`` samples where the analysis window is non-zero (for ``fbank`` after Kaldi's
  per-frame DC removal and pre-emphasis), windowed; the real DFT is one radix-2 step, then two float32
  matrix products: the sum of each frame's two halves times the even bins' ``[n_fft / 2, ~n_fft / 2]``
  basis, their difference times the odd bins' (``dft_basis_even``/``_odd``: cosines, then minus sines;
  ``AudioFrontend._mel_energies``; ``n_fft`` must be even). The fixed matrices are non-persistent
  buffers: recomputed from the config, never stored in (or loaded from) the weights.
* Why matrix products and not an FFT, measured for 16 one-second clips (log-mel, 512-point frames; see
  docs/inference.md): the float64 FFT (``torch.stft``, onnxruntime's ``STFT`` kernel) was 2.5x (PyTorch)
  to 3.5x (onnxruntime) slower; a float32 ``torch.stft`` was on par in PyTorch, but onnxruntime's float32
  ``STFT`` still ~3x slower than one windowed ``[win_length, n_fft + 2]`` product, which runs on the same
  tuned GEMM kernels as the model; the radix-2 step then saved 36% of its multiply-adds. It costs more
  arithmetic than an FFT, ~0.5 MB of constants (``hfspeech.export.compact`` keeps them out of ONNX files),
  and float32 instead of float64.
* Exactness in float32: the frames of a clip are the same whether it is alone or zero-padded in a
  longer batch (zero padding by ``n_fft // 2`` on each side, not reflect: a clip of ``L`` samples gives
  exactly ``L // hop_length + 1`` frames), and a GEMM computes each output row with nearly the same
  operations whatever the number of rows, so a clip's features come out the same alone and in a batch
  (measured 0.0 in onnxruntime's MLAS and in MKL for clips of four frames or more; MKL rounds the last
  rows of a product whose row count is not a multiple of four differently, ~1e-6 in log-mel). The
  per-utterance normalisation only looks at valid frames, which keeps that padding invariance. Against
  the float64 FFT used before, features agree within ~5e-6 on noise; bins 80 dB below a frame's
  strongest (a pure tone plus faint noise) move by up to ~1e-3 in log-mel; the demo CNN's logits moved by
  at most 3.8e-6 on 200 held-out clips, and by at most 4.3e-6 with the radix-2 step (docs/inference.md).
"""

from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank, window_function

# Power floor before the log for "log_mel"/"mfcc": -60 dB relative to a unit-variance signal
# (the feature extractor normalises waveforms). Lower floors let digital silence dominate the
# per-utterance variance used by the feature normalisation.
LOG_FLOOR = 1e-6
# Kaldi floors the filter bank energies at float32 machine epsilon.
KALDI_LOG_FLOOR = float(np.finfo(np.float32).eps)
PREEMPHASIS = 0.97
NORM_EPS = 1e-5


def _analysis_window(config) -> np.ndarray:
    """``[n_fft]`` window, ``win_length`` long and centred in the frame (zero elsewhere).

    A periodic Hann window (as ``torch.stft`` uses) for ``log_mel``/``mfcc``; Kaldi's symmetric
    povey window for ``fbank`` (it is 0 at its first sample, so Kaldi's special rule for
    pre-emphasising the first sample never shows).
    """
    if config.feature_type == "fbank":
        return window_function(config.win_length, "povey", periodic=False, frame_length=config.n_fft)
    return window_function(config.win_length, "hann", frame_length=config.n_fft)


class DftBins(NamedTuple):
    """Bins ``first, first + 2, ...`` (``num_bins`` of them) of an ``n_fft``-point DFT, taken from ``n_fft / 2``
    folded samples (`AudioFrontend._mel_energies`); `hfspeech.export.compact` recomputes the basis in the graph."""
    first: int
    num_bins: int
    n_fft: int


def dft_basis(bins: DftBins) -> np.ndarray:
    """``[n_fft / 2, 2 * num_bins]``: ``cos(2 pi k n / n_fft)`` for the bins ``k`` (columns) and samples ``n``
    (rows), then the same with ``-sin``. Computed in float64 (angles reduced modulo ``n_fft`` first), rounded
    once."""
    positions = np.arange(bins.n_fft // 2)[:, None]
    frequencies = bins.first + 2 * np.arange(bins.num_bins)[None, :]
    angles = 2 * np.pi * ((positions * frequencies) % bins.n_fft) / bins.n_fft
    return np.concatenate([np.cos(angles), -np.sin(angles)], axis=1)


def even_and_odd_bins(n_fft: int) -> tuple[DftBins, DftBins]:
    """Bins ``0, 2, ... <= n_fft / 2`` and ``1, 3, ... <= n_fft / 2``: the real spectrum, split by parity."""
    half = n_fft // 2
    return DftBins(0, half // 2 + 1, n_fft), DftBins(1, (half + 1) // 2, n_fft)


def _orthonormal_dct(n_mels: int, n_mfcc: int) -> np.ndarray:
    """``[n_mels, n_mfcc]`` orthonormal DCT-II matrix (``torchaudio.functional.create_dct``)."""
    n = np.arange(n_mels)[:, None]
    k = np.arange(n_mfcc)[None, :]
    dct = np.cos(np.pi / n_mels * (n + 0.5) * k) * np.sqrt(2.0 / n_mels)
    dct[:, 0] /= np.sqrt(2.0)
    return dct


class AudioFrontend(nn.Module):
    """Turns padded waveforms ``[B, T]`` into features ``[B, frames, num_features]``.

    Feature types:

    * ``"log_mel"``: Hann-windowed power spectrum, HTK mel filters without area normalisation
      (torchaudio ``MelSpectrogram`` defaults, so torchaudio recipes port unchanged), natural log
      floored at ``LOG_FLOOR``.
    * ``"mfcc"``: the log-mel above followed by an orthonormal DCT-II, first ``n_mfcc`` kept.
    * ``"fbank"``: Kaldi-style log mel filter bank: per-frame DC removal, pre-emphasis 0.97,
      povey window, power spectrum, Kaldi mel scale triangular in mel space, log floored at
      float32 epsilon. Unlike Kaldi's default ``snip_edges``, frames are centred like the others.

    Returns the features and a frame mask (``True`` on valid frames); padded frames are 0.
    """

    def __init__(self, config):
        super().__init__()
        self.feature_type = config.feature_type
        self.n_fft = config.n_fft
        self.win_length = config.win_length
        self.hop_length = config.hop_length
        self.normalize_features = config.normalize_features
        self.norm_eps = NORM_EPS
        self.preemphasis = PREEMPHASIS
        self.log_floor = KALDI_LOG_FLOOR if config.feature_type == "fbank" else LOG_FLOOR
        self._num_features = config.n_mfcc if config.feature_type == "mfcc" else config.n_mels

        f_max = config.f_max if config.f_max is not None else config.sampling_rate / 2
        mel_filters = mel_filter_bank(
            num_frequency_bins=config.n_fft // 2 + 1,
            num_mel_filters=config.n_mels,
            min_frequency=config.f_min,
            max_frequency=f_max,
            sampling_rate=config.sampling_rate,
            mel_scale="kaldi" if config.feature_type == "fbank" else "htk",
            triangularize_in_mel_space=config.feature_type == "fbank",
        )
        dct = _orthonormal_dct(config.n_mels, config.n_mfcc if config.feature_type == "mfcc" else 1)
        self.window_offset = (config.n_fft - config.win_length) // 2
        window = _analysis_window(config)[self.window_offset : self.window_offset + config.win_length]
        self.register_buffer("window", torch.tensor(window, dtype=torch.float32), persistent=False)
        self.dft_bins = even_and_odd_bins(config.n_fft)
        self.num_even_bins, self.num_odd_bins = self.dft_bins[0].num_bins, self.dft_bins[1].num_bins
        for name, bins in zip(("dft_basis_even", "dft_basis_odd"), self.dft_bins):
            self.register_buffer(name, torch.tensor(dft_basis(bins), dtype=torch.float32), persistent=False)
        self.register_buffer("mel_filters", torch.tensor(mel_filters, dtype=torch.float32), persistent=False)
        by_parity = np.concatenate([mel_filters[0::2], mel_filters[1::2]])  # rows in _mel_energies' bin order
        self.register_buffer("mel_filters_by_parity", torch.tensor(by_parity, dtype=torch.float32), persistent=False)
        self.register_buffer("dct_matrix", torch.tensor(dct, dtype=torch.float32), persistent=False)

    @property
    def num_features(self) -> int:
        return self._num_features

    def _apply(self, fn, recurse=True):
        """Moves follow the model (`.to(device)`), dtype casts do not: `model.half()` or `.to(torch.bfloat16)` (as
        Trainer's `--fp16_full_eval`) made the float32 front end's matrix products fail, and a cast back kept
        the constants rounded. `from_pretrained(torch_dtype=...)` keeps them float32 as well."""
        before = dict(self._buffers)
        super()._apply(fn, recurse)
        for name, constant in before.items():
            after = self._buffers[name]
            if constant is not None and after is not None and after.dtype != constant.dtype:
                self._buffers[name] = after.to(constant.dtype) if constant.is_meta else constant.to(after.device)
        return self

    def _kaldi_preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Kaldi's per-frame DC removal, then pre-emphasis 0.97 (its first sample against itself), over the
        ``win_length`` samples of each frame that the window covers."""
        x = frames - frames.mean(-1, keepdim=True)
        return torch.cat([x[..., :1] * (1 - self.preemphasis), x[..., 1:] - self.preemphasis * x[..., :-1]], dim=-1)

    def _frames(self, waveforms: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[B, frames, win_length]``: the samples of each centred frame where the window is non-zero.

        Frame ``t`` covers ``win_length`` samples from ``t * hop_length`` in the waveform padded so that
        frame 0 starts at sample 0; that padded waveform is cut into ``hop_length`` blocks, and frame ``t``
        is blocks ``t``, ``t + 1``... side by side, the last one cut short. Slices and one concatenation:
        contiguous copies, where an index gather (one index per sample) was 15% of onnxruntime's time.
        """
        blocks_per_frame = -(-self.win_length // self.hop_length)
        num_blocks = num_frames + blocks_per_frame - 1
        left = self.n_fft // 2 - self.window_offset  # zero padding by n_fft // 2, then the window's offset
        padded = nn.functional.pad(waveforms, (left, blocks_per_frame * self.hop_length))
        blocks = padded[:, : num_blocks * self.hop_length].reshape(waveforms.shape[0], num_blocks, self.hop_length)
        last_width = self.win_length - (blocks_per_frame - 1) * self.hop_length
        parts = [blocks[:, j : j + num_frames] for j in range(blocks_per_frame - 1)]
        parts.append(blocks[:, blocks_per_frame - 1 : blocks_per_frame - 1 + num_frames, :last_width])
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _mel_energies(self, frames: torch.Tensor) -> torch.Tensor:
        """Mel energies of the frames' power spectrum, the DFT taken in one radix-2 step (decimation in frequency).

        With the windowed frame zero-padded to ``n_fft`` samples ``x[n]`` and ``h = n_fft / 2``, bin ``k`` is
        ``sum_{n < h} (x[n] + (-1)^k x[n + h]) exp(-2 pi i k n / n_fft)``: the even bins come from the sum of
        the frame's two halves, the odd bins from their difference, each a product with a ``[h, ~h]``
        basis: 36% fewer multiply-adds than one ``[win_length, n_fft + 2]`` product for 400-of-512 windows
        (onnxruntime front end 9.8 -> 7.6 ms for 16 one-second clips, one thread). Folding the frame (time
        domain) rather than splitting the output (decimation in time, even/odd samples: 6.6 ms) keeps
        float32 as close to a float64 FFT as one product (max log-mel error on FSDD 3.4e-3 vs 2.0e-3; the
        even/odd split's 8.4e-3: quiet bins came out of a difference of two large partial sums).
        """
        padded = nn.functional.pad(frames * self.window, (self.window_offset, self.n_fft - self.window_offset
                                                          - self.win_length))
        first, second = padded[..., : self.n_fft // 2], padded[..., self.n_fft // 2 :]
        even = (first + second) @ self.dft_basis_even  # [B, frames, 2 * bins]: real parts, then imaginary
        odd = (first - second) @ self.dft_basis_odd
        even_bins, odd_bins = self.num_even_bins, self.num_odd_bins
        power = torch.cat([even[..., :even_bins] ** 2 + even[..., even_bins:] ** 2,
                           odd[..., :odd_bins] ** 2 + odd[..., odd_bins:] ** 2], dim=-1)
        return power @ self.mel_filters_by_parity

    def _log_mel(self, input_values: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[B, frames, n_mels]`` log mel energies (float32) of zero-padded waveforms ``[B, T]``."""
        frames = self._frames(input_values.to(torch.float32), num_frames)  # [B, frames, win_length]
        if self.feature_type == "fbank":
            frames = self._kaldi_preprocess(frames)
        return torch.log(torch.clamp(self._mel_energies(frames), min=self.log_floor))

    def forward(
        self, input_values: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        output_dtype = input_values.dtype
        # The normalisation's sums over a clip run in float64 (cheap: one value per frame and bin), except
        # on MPS, which has no float64.
        compute_dtype = torch.float32 if input_values.device.type == "mps" else torch.float64
        if attention_mask is not None:
            # Whatever value the padding holds, the front end sees zeros there.
            input_values = input_values * attention_mask.to(input_values.dtype)
        num_frames = input_values.shape[-1] // self.hop_length + 1
        features = self._log_mel(input_values, num_frames)
        if self.feature_type == "mfcc":
            features = features @ self.dct_matrix
        features = features.to(compute_dtype)

        positions = torch.arange(num_frames, device=features.device).unsqueeze(0)
        if attention_mask is None:
            frame_mask = positions.expand(features.shape[0], num_frames) >= 0
        else:
            # Summed in float64 (exact to 2^53 samples): onnxruntime's int64 ReduceSum took 3.4x longer.
            lengths = attention_mask.to(compute_dtype).sum(-1).to(torch.long)
            frame_lengths = torch.div(lengths, self.hop_length, rounding_mode="floor") + 1
            frame_mask = positions < frame_lengths.unsqueeze(1)

        weights = frame_mask.unsqueeze(-1).to(features.dtype)
        if self.normalize_features == "none":
            return (features * weights).to(output_dtype), frame_mask
        # "utterance": one mean and variance over all valid frames and bins -- removes the clip's
        # gain but keeps its spectral shape, which is what tells a hum from a whistle.
        # "per_bin": a mean and variance per bin (CMVN) -- also removes the channel, and with it
        # anything stationary; right for speech recorded on varied microphones, wrong for steady sounds.
        count = weights.sum(1, keepdim=True).clamp(min=1.0)  # [B, 1, 1]
        mean = (features * weights).sum(1, keepdim=True) / count  # per bin: [B, 1, D]
        if self.normalize_features == "utterance":
            mean = mean.mean(2, keepdim=True)
        centered = (features - mean) * weights
        variance = (centered**2).sum(1, keepdim=True) / count
        if self.normalize_features == "utterance":
            variance = variance.mean(2, keepdim=True)
        features = centered / torch.sqrt(variance + self.norm_eps)
        return features.to(output_dtype), frame_mask


class SpecAugment(nn.Module):
    """SpecAugment masking (Park et al., 2019) for normalised features, training only.

    Each clip gets ``num_freq_masks`` frequency bands and ``num_time_masks`` time spans of random
    width (0 to the configured maximum) set to 0, which is the mean of normalised features. Time
    spans stay within the clip's valid frames, so padding does not absorb the masks. Randomness
    comes from torch's RNG, so ``torch.manual_seed`` makes it reproducible.
    """

    def __init__(self, config):
        super().__init__()
        self.enabled = config.apply_spec_augment
        self.num_freq_masks = config.num_freq_masks
        self.freq_mask_width = config.freq_mask_width
        self.num_time_masks = config.num_time_masks
        self.time_mask_width = config.time_mask_width

    @staticmethod
    def _random_spans(sizes: torch.Tensor, num_spans: int, max_width: int, length: int) -> torch.Tensor:
        """``[B, length]`` bool: union of ``num_spans`` random spans inside ``[0, sizes[b])``."""
        sizes = sizes.unsqueeze(1)
        rand_width = torch.rand(sizes.shape[0], num_spans, device=sizes.device)
        widths = torch.minimum((rand_width * (max_width + 1)).long(), sizes)
        rand_start = torch.rand(sizes.shape[0], num_spans, device=sizes.device)
        starts = (rand_start * (sizes - widths + 1)).long().unsqueeze(-1)
        position = torch.arange(length, device=sizes.device).view(1, 1, -1)
        return ((position >= starts) & (position < starts + widths.unsqueeze(-1))).any(1)

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.enabled):
            return features
        batch_size, num_frames, num_bins = features.shape
        all_bins = torch.full((batch_size,), num_bins, dtype=torch.long, device=features.device)
        freq = self._random_spans(all_bins, self.num_freq_masks, self.freq_mask_width, num_bins)
        time = self._random_spans(frame_mask.sum(-1), self.num_time_masks, self.time_mask_width, num_frames)
        return features.masked_fill(freq.unsqueeze(1) | time.unsqueeze(2), 0.0)
