"""A list in a message stays readable when an item holds the separator: the training log's "6 classes: beep,
glass, breaking, siren" (a multi-label audit) named three labels or four."""

from hfspeech.errors import first_few


def test_an_item_holding_the_separator_is_quoted():
    assert first_few(["beep", "glass, breaking", "siren"], 20) == "beep, 'glass, breaking', siren"
    assert first_few(["a;b", "c"], 5, separator="; ") == "'a;b'; c"
    assert first_few(["beep", "siren", "dog"], 2) == "beep, siren and 1 more"
