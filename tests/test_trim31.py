"""Trimming a clip is one implementation (`data.samples.TrimMeter`) for whole clips and long files, and it does not
import librosa (~200 MB resident): `predict` and `serve` trim for models trained with --trim_silence."""

from __future__ import annotations

import subprocess
import sys


def test_trimming_a_clip_does_not_import_librosa():
    script = (
        "import sys, numpy as np\n"
        "from hfspeech.data.samples import trim_silence\n"
        "clip = np.concatenate([np.zeros(4000), np.ones(800), np.zeros(4000)]).astype(np.float32)\n"
        "kept = trim_silence(clip, 40.0)\n"
        "assert 700 < kept.size < 1400, kept.size\n"
        "print('librosa' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_clip_of_several_channels_is_refused_not_trimmed_as_one_long_clip():
    """TrimMeter flattens what it is fed: a (2, 8000) clip gave the span (2816, 16000), past its 8000 samples."""
    import numpy as np
    import pytest

    from hfspeech.data.samples import trim_span

    with pytest.raises(ValueError, match="mono clip"):
        trim_span(np.ones((2, 8000), np.float32))
