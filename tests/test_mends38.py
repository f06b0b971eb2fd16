"""Mends of session 38 without a file of their own."""

from __future__ import annotations

import pytest

from hfspeech.errors import UsageError
from hfspeech.synthetic.spoken import _check_keywords


def test_a_decomposed_keyword_is_read_as_its_composed_word():
    assert _check_keywords(["zoe\u0308", "no"]) == ["zo\u00eb", "no"]


def test_a_keyword_composed_and_decomposed_is_one_keyword_twice():
    with pytest.raises(UsageError, match="unique"):
        _check_keywords(["zo\u00eb", "zoe\u0308"])
