"""What a Whisper checkpoint's vocabulary size says about it, for the converter and the label scorer alike.

A module of its own (importing nothing) so that a published label scorer, whose remote code follows its
hfspeech imports, does not carry the CTranslate2 converter with it.
"""

MULTILINGUAL_VOCAB_SIZE = 51865  # English-only (*.en) checkpoints have one token fewer


def is_multilingual(vocab_size: int) -> bool:
    """Multilingual checkpoints are prompted with language and task tokens; English-only ones are not."""
    return vocab_size >= MULTILINGUAL_VOCAB_SIZE
