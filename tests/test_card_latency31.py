"""The card's latency is the typical time per clip: the median, the first clip (a warm-up) left out. A mean over
every clip made two stagings of one model read 350.58 and 62.85 ms (a reproducibility audit: first clip 67-251 ms,
the others' median 19.5-20.9 ms)."""

from __future__ import annotations

import pytest


def test_the_latency_is_the_median_without_the_warm_up_clip():
    from hfspeech.hub.card_variants import typical_latency

    spiky = [0.251, 0.020, 0.021, 0.900, 0.019]  # a warm-up, then one load spike
    assert typical_latency(spiky) == pytest.approx(0.0205)
    assert typical_latency([0.3]) == pytest.approx(0.3)  # one clip: all there is


def test_the_card_names_the_latency_it_shows():
    from hfspeech.hub.card_variants import variants_table

    table = variants_table([{"name": "ONNX fp32", "file": "onnx/model.onnx", "size_mb": 0.5, "accuracy": 0.9,
                             "latency_ms": 3.25, "num_clips": 10}])
    assert "median latency per clip" in table and "3.25 ms" in table
