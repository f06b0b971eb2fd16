"""Training from a Hub id in the Hugging Face cache while the Hub is out of reach starts at once, as predict does."""

import shutil
import time

from tests.test_model_loading_inputs import LABELS, cnn, no_hub  # noqa: F401 (fixtures)
from hfspeech.training.arguments import ModelArguments
from hfspeech.training.model_setup import build_model, pretrained_feature_extractor


def test_a_cached_hub_id_trains_without_waiting_for_retries(no_hub, cnn):  # noqa: F811
    snapshot = no_hub / "models--someone--tiny-cnn" / "snapshots" / "0123abc"
    shutil.copytree(cnn, snapshot)
    (no_hub / "models--someone--tiny-cnn" / "refs").mkdir()
    (no_hub / "models--someone--tiny-cnn" / "refs" / "main").write_text("0123abc")
    args = ModelArguments(model_name_or_path="someone/tiny-cnn")
    start = time.perf_counter()
    model, _ = build_model(args, LABELS, pretrained_feature_extractor(args))
    assert time.perf_counter() - start < 10  # huggingface_hub's retries of each file took minutes
    assert model.config.id2label == dict(enumerate(LABELS))
