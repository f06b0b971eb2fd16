"""How a transcript writes a label: the spellings a speech-to-text decoder is asked to score for it.

A classifier that scores each label by a decoder's likelihood of the label's words
(`models.whisper.modeling_label_scoring`) must know the ways a transcript writes them: Whisper writes a
spoken "six" as " six", " Six.", " 6" or " 6." depending on the speaker's pace and pitch. Plain Python, no
torch or transformers: `synthetic.digits` takes its digit words from here too.
"""

from __future__ import annotations

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def spoken_forms(label: str) -> list[str]:
    """A label's spellings, each once: lower and capitalised, with and without a full stop, after a space (as a
    word follows the prompt); a number from zero to nine also as the other of word and numeral. Underscores are
    spaces ("turn_on" -> " turn on")."""
    words = [label.replace("_", " ").strip()]
    if words[0].lower() in DIGIT_WORDS:
        words.append(str(DIGIT_WORDS.index(words[0].lower())))
    elif words[0].isdigit() and int(words[0]) < 10:
        words.insert(0, DIGIT_WORDS[int(words[0])])
    forms = [form for word in words
             for form in (f" {word.lower()}", f" {word.capitalize()}", f" {word.capitalize()}.", f" {word.lower()}.")]
    return list(dict.fromkeys(forms))  # a numeral's cases coincide
