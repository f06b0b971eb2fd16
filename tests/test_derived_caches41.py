"""Frozen features outlive the decoding they were computed from (session 41): a probe's features were named after
the split handed to `cached_feature_views` (the decoded table with its `error` column removed, a carved split's rows
selected), so a superseded decoding's removal left them, and nothing could read them again; and features of the
same decoding and encoder made by another torch or transformers version (or features format) stayed for good. Now
they are named after the decoded table and go with it, and a family's features of other versions go once unused
for `UNUSED_DECODER_DAYS`, where no live run holds their folder; another encoder's features stay."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

import hfspeech.models
from conftest import save_random_baseline
from hfspeech.data.decoded_caches import UNUSED_DECODER_DAYS
from hfspeech.training import feature_cache
from hfspeech.training.feature_cache import FEATURE_FAMILIES, cached_feature_views
from test_decoded_caches40 import data  # noqa: F401 (a fixture)
from test_decoded_caches40 import decodings, held_by_another_run, next_release, prepared, table_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def encoder(tmp_path: Path, channels: list[int]):
    """A small random CNN (its base the conv stack) and its feature extractor; other `channels`: another encoder."""
    hfspeech.models.register()
    folder = save_random_baseline(tmp_path / f"cnn{channels}", "cnn", ["a", "b", "c"], 0.5, n_mels=16,
                                  conv_channels=channels)
    return AutoModelForAudioClassification.from_pretrained(folder), AutoFeatureExtractor.from_pretrained(folder)


def features_files(tmp_path: Path) -> set[str]:
    return {path.name for path in (tmp_path / "cache").rglob("*frozen*.arrow")}


def unused_for(days: float) -> None:
    """The frozen features recorded so far last used `days` ago."""
    import datasets

    for record in (Path(datasets.config.HF_DATASETS_CACHE) / FEATURE_FAMILIES).glob("*.json"):
        uses = json.loads(record.read_text())
        record.write_text(json.dumps({path: {**use, "used": use["used"] - days * 86400} for path, use in uses.items()}))


def test_a_superseded_decodings_frozen_features_go_with_it(data, tmp_path, monkeypatch, caplog):
    """Features of the carved splits (none of them the decoded table itself) are removed with the decoding a new
    decoder superseded, counted in its one line; while another run holds the folder both stay."""
    model, extractor = encoder(tmp_path, [4, 8])
    cached_feature_views(model, extractor, prepared(data), 16000, 0.5)
    earlier, decoded = features_files(tmp_path), decodings(tmp_path)
    assert len(earlier) == 3  # train, validation, test
    next_release(monkeypatch, "-next")
    with held_by_another_run(table_folder(tmp_path)):
        prepared(data)
    assert features_files(tmp_path) == earlier and decoded < decodings(tmp_path)  # a live run may read them
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        again = prepared(data)
    assert not features_files(tmp_path) and not decodings(tmp_path) & decoded
    assert f"removed {len(decoded) + len(earlier)} file(s)" in caplog.text
    cached_feature_views(model, extractor, again, 16000, 0.5)  # the new decoding's, beside it
    assert len(features_files(tmp_path)) == 3 and all(name.startswith(next(iter(decodings(tmp_path)))[:-6])
                                                      for name in features_files(tmp_path))


def test_features_of_other_library_versions_go_once_unused_for_a_week(data, tmp_path, monkeypatch, caplog):
    """The same decoding and encoder under another transformers version: new features, the earlier ones kept while
    used this week (two environments in turn), removed once unused for `UNUSED_DECODER_DAYS`; another encoder's
    features of the same clips stay."""
    dataset = prepared(data)
    model, extractor = encoder(tmp_path, [4, 8])
    other_model, other_extractor = encoder(tmp_path, [4, 4])
    cached_feature_views(other_model, other_extractor, dataset, 16000, 0.5)
    another_encoders = features_files(tmp_path)
    cached_feature_views(model, extractor, dataset, 16000, 0.5)
    earlier = features_files(tmp_path) - another_encoders
    monkeypatch.setattr(feature_cache.transformers, "__version__", "99.0.0")
    cached_feature_views(model, extractor, dataset, 16000, 0.5)
    assert len(features_files(tmp_path)) == 9  # used this week: kept
    unused_for(UNUSED_DECODER_DAYS + 1)
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        cached_feature_views(model, extractor, dataset, 16000, 0.5)
    now = features_files(tmp_path)
    assert len(now) == 6 and another_encoders < now and not now & earlier
    assert "removed 1 file(s)" in caplog.text and "unused for 7 days" in caplog.text


def test_a_features_format_bump_leaves_features_a_live_run_holds(data, tmp_path, monkeypatch):
    """Features of an earlier `FEATURES_FORMAT`, unused for a week, stay while another run holds their folder."""
    dataset = prepared(data)
    model, extractor = encoder(tmp_path, [4, 8])
    cached_feature_views(model, extractor, dataset, 16000, 0.5)
    earlier = features_files(tmp_path)
    monkeypatch.setattr(feature_cache, "FEATURES_FORMAT", feature_cache.FEATURES_FORMAT + 1)
    unused_for(UNUSED_DECODER_DAYS + 1)
    with held_by_another_run(table_folder(tmp_path)):
        cached_feature_views(model, extractor, dataset, 16000, 0.5)
    assert earlier < features_files(tmp_path)
    cached_feature_views(model, extractor, dataset, 16000, 0.5)
    assert len(features_files(tmp_path)) == 3 and not features_files(tmp_path) & earlier
