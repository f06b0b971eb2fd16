"""benchmarks/whisper_label_words.py and `models.label_words`: Whisper's decoder scores label words.

A label's spellings; on the real tiny.en (fetched by scripts/setup.sh) the scorer names espeak-ng digits it was
never trained on, and the benchmark's fine-tuning loop lowers the cross-entropy of its label-word logits.
"""

from __future__ import annotations

import argparse
import subprocess

import numpy as np
import pytest
import torch

from benchmarks.whisper_label_words import accuracy, fine_tune, load_scorer, log_mel
from hfspeech.models.label_words import spoken_forms

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
DIGITS = [str(digit) for digit in range(10)]
SPOKEN = {"three": 3, "seven": 7, "nine": 9, "four": 4}


def test_a_digit_and_its_word_share_forms_each_once():
    assert spoken_forms("6") == spoken_forms("six") == spoken_forms("Six")
    assert len(set(spoken_forms("6"))) == len(spoken_forms("6")) == 6
    assert spoken_forms("turn_on") == [" turn on", " Turn on", " Turn on.", " turn on."]


@pytest.fixture(scope="module")
def scorer_and_words(whisper_tiny_en, tmp_path_factory):
    scorer, processor = load_scorer(str(whisper_tiny_en), DIGITS, seconds=1)
    folder = tmp_path_factory.mktemp("words")
    for word in SPOKEN:
        subprocess.run(["espeak-ng", "-w", str(folder / f"{word}.wav"), word], check=True)
    features = np.stack([log_mel(processor.feature_extractor, folder / f"{word}.wav", 1) for word in SPOKEN])
    return scorer, features, np.array(list(SPOKEN.values()))


def test_zero_shot_scores_name_spoken_digits(scorer_and_words):
    scorer, features, labels = scorer_and_words
    assert accuracy(scorer, features, labels) == 1.0


def test_fine_tuning_lowers_the_label_word_loss(scorer_and_words):
    scorer, features, labels = scorer_and_words

    def loss() -> float:
        scorer.eval()
        with torch.no_grad():
            logits = scorer(torch.from_numpy(features)).logits
        return float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)))

    before = loss()
    args = argparse.Namespace(seed=0, learning_rate=3e-5, epochs=2, batch=2)
    fine_tune(scorer, features, labels, args)
    assert loss() < 0.8 * before
