"""Session 29 leftovers: `torch.compile` of the padding-masked baselines, the streaming classifier's
`sampling_rate=`, and conversions / staging into symlinked output folders."""

import json
import os

import numpy as np
import pytest
import torch

from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.streaming import StreamingClassifier
from hfspeech.models.bcresnet.configuration_bcresnet import BCResNetAudioConfig
from hfspeech.models.bcresnet.modeling_bcresnet import BCResNetAudioForAudioClassification
from hfspeech.models.cnn.configuration_cnn import CNNAudioConfig
from hfspeech.models.cnn.modeling_cnn import CNNAudioForAudioClassification
from hfspeech.models.whisper import pretrained
from hfspeech.output_folders import held_by_this_process
from hfspeech.output_staging import written_beside
from tests.test_long_audio import save_random_cnn, tone_pattern

TINY_BASELINES = {
    "cnn": lambda: CNNAudioForAudioClassification(CNNAudioConfig(num_labels=3, n_mels=16, conv_channels=[4, 8])),
    "bcresnet": lambda: BCResNetAudioForAudioClassification(BCResNetAudioConfig(
        num_labels=3, n_mels=20, width_multiplier=0.5, blocks_per_stage=(1, 1, 1, 1))),
}


def padded_batch():
    """Two clips, the second padded: the batch the masks exist for."""
    generator = torch.Generator().manual_seed(0)
    input_values = torch.randn(2, 4000, generator=generator)
    attention_mask = torch.ones(2, 4000, dtype=torch.long)
    attention_mask[1, 2500:] = 0
    input_values[1, 2500:] = 0
    return input_values, attention_mask


@pytest.mark.parametrize("family", sorted(TINY_BASELINES))
def test_baselines_compile_to_one_graph_with_the_same_logits(family):
    """`bool(attention_mask.all())` was a graph break on every call; compiled, the masks are always applied
    (exact), so `fullgraph=True` compiles and padded and unpadded batches give eager's logits."""
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is unavailable")
    torch._dynamo.reset()
    model = TINY_BASELINES[family]().eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    input_values, attention_mask = padded_batch()
    with torch.no_grad():
        for mask in (attention_mask, torch.ones_like(attention_mask)):
            expected = model(input_values, attention_mask=mask).logits
            torch.testing.assert_close(compiled(input_values, attention_mask=mask).logits, expected,
                                       rtol=0, atol=0)


@pytest.fixture(scope="module")
def random_classifier(tmp_path_factory) -> AudioClassifier:
    folder = save_random_cnn(tmp_path_factory.mktemp("stream29") / "cnn")
    return AudioClassifier.from_pretrained(str(folder), device=torch.device("cpu"))


def test_streaming_classifier_takes_sampling_rate_as_classify_waveform_does(random_classifier):
    """`sampling_rate=` (classify_waveform's spelling) was a bare TypeError; it now resamples the chunks as
    `input_rate=` does, and the stream's windows match offline classification at that rate."""
    audio = tone_pattern(8000, 2.1, channels=1, seed=29)[:, 0].astype(np.float32)
    chunks = [audio[i : i + 1234] for i in range(0, len(audio), 1234)]
    streamed = list(StreamingClassifier(random_classifier, 0.5, 0.25, sampling_rate=8000).process(chunks))
    by_old_name = list(StreamingClassifier(random_classifier, 0.5, 0.25, input_rate=8000).process(chunks))
    offline = random_classifier.classify_waveform(audio, window_seconds=0.5, hop_seconds=0.25, sampling_rate=8000)
    assert [(w.start, w.end) for w in streamed] == [(w.start, w.end) for w in offline.windows]
    np.testing.assert_allclose(np.stack([w.scores for w in streamed]),
                               np.stack([w.scores for w in offline.windows]), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(np.stack([w.scores for w in streamed]), np.stack([w.scores for w in by_old_name]))


@pytest.mark.parametrize("rates,message", [
    (dict(sampling_rate=0), "sampling_rate must be a positive"),
    (dict(sampling_rate=8000, input_rate=16000), "input_rate=16000 and sampling_rate=8000 disagree"),
])
def test_streaming_classifier_rejects_a_bad_or_conflicting_sampling_rate(random_classifier, rates, message):
    with pytest.raises(UsageError, match=message):
        StreamingClassifier(random_classifier, **rates)


needs_flock = pytest.mark.skipif(os.name == "nt", reason="no flock: nothing is locked or swept on Windows")


def linked_folder(tmp_path):
    """`tmp_path/links/tiny`, a link to `tmp_path/real/tiny`: the link's folder and the target's differ."""
    target, link = tmp_path / "real" / "tiny", tmp_path / "links" / "tiny"
    target.mkdir(parents=True)
    link.parent.mkdir()
    link.symlink_to(target)
    return link, target


@needs_flock
def test_a_conversion_through_a_link_holds_the_targets_folder(tmp_path):
    """`converting_alone` locked the link's folder: a second conversion by the real path took its own lock at
    once and both wrote beside the target. Now the target's folder is held, so the second waits."""
    link, target = linked_folder(tmp_path)
    with pretrained.converting_alone(link):
        handle = os.open(target.parent, os.O_RDONLY)
        try:
            assert not held_by_this_process(handle)
        finally:
            os.close(handle)


@needs_flock
def test_a_killed_runs_scratch_beside_a_link_is_swept_and_a_live_ones_kept(tmp_path):
    """Where the target's folder had no room, the scratch folder goes beside the link; a killed run's stayed
    there for ever (the sweep looked only beside the target). The next write through the link removes it, and
    keeps one a live run holds."""
    link, target = linked_folder(tmp_path)
    killed, live = link.parent / ".tiny-partial-abcd1234", link.parent / ".tiny-partial-live0000"
    for scratch in (killed, live):
        (scratch / "tiny").mkdir(parents=True)
        (scratch / "tiny" / "model.safetensors").write_bytes(b"half")
    handle = os.open(live, os.O_RDONLY)
    try:
        assert held_by_this_process(handle)
        with written_beside(link) as new:
            new.mkdir()
            (new / "model.safetensors").write_bytes(b"whole")
        assert sorted(p.name for p in link.parent.iterdir()) == [live.name, "tiny"]
    finally:
        os.close(handle)
    assert (target / "model.safetensors").read_bytes() == b"whole" and link.is_symlink()


@needs_flock
def test_pretrained_through_a_link_sweeps_a_killed_runs_scratch_beside_the_link(tmp_path, monkeypatch):
    """A converted checkpoint was taken as finished while a killed run's scratch lay beside the link (150 MB);
    `fetch_pretrained` now finds and removes it, leaving the conversion as it was."""
    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path / "cache"))
    link, target = linked_folder(tmp_path)
    sha256 = [wheel.sha256 for wheel in pretrained.PRETRAINED["whisper-tiny.en"].wheels]
    (target / pretrained.MARKER).write_text(json.dumps({"sha256": sha256}))
    (target / "model.safetensors").write_bytes(b"converted")
    (link.parent / ".tiny-partial-abcd1234").mkdir()
    assert pretrained.fetch_pretrained("whisper-tiny.en", link) == link
    assert [p.name for p in link.parent.iterdir()] == ["tiny"]
    assert (target / "model.safetensors").read_bytes() == b"converted"
