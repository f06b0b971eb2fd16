"""`hfspeech evaluate` reads `data.transforms` (its `multi_hot`) but trains nothing: it must not pay for the
augmenter's imports (audiomentations; 3.1 s of a 16-18 s evaluate of 20 clips in a multi-label audit)."""

from __future__ import annotations

import subprocess
import sys


def test_evaluation_and_the_transforms_do_not_import_the_augmenter():
    script = ("import sys\n"
              "import hfspeech.evaluation.evaluate_model, hfspeech.data.transforms\n"
              "print(sorted(m for m in ('audiomentations', 'hfspeech.data.augment') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_augmenter_and_the_crops_draw_from_one_worker_entropy():
    """Moved below both (`data.worker_seeds`): the augmenter still mixes it in (no second copy drifting apart)."""
    from hfspeech.data import augment, transforms, worker_seeds

    assert augment.worker_entropy is worker_seeds.worker_entropy is transforms.worker_entropy
