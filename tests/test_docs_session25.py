"""Promises the docs make about the twenty-fifth session's changes, checked against the code (docs audit)."""

import re
import time
from pathlib import Path

import pytest

from tests.conftest import save_random_baseline

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_serving_limit_table_names_serve_flags_with_their_defaults():
    """docs/serving.md's limit table (`--max_requests 64` ...) is what `hfspeech serve` takes, with its default."""
    from hfspeech.cli.serve import serve_parser

    text = (DOCS / "serving.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| [^|]+ \| `(--\w+) ([\d.]+)` \|", text, re.MULTILINE)
    assert {flag for flag, _ in rows} >= {"--max_body_mb", "--max_seconds", "--request_timeout", "--max_requests"}
    defaults = {option: action.default for action in serve_parser()._actions for option in action.option_strings}
    for flag, default in rows:
        assert defaults[flag] == pytest.approx(float(default)), flag


@pytest.mark.parametrize("family, unit", [("cnn", "blocks"), ("lstm", "layers")])
def test_layerwise_decay_reaches_the_cnn_blocks_and_lstm_layers(family, unit, tmp_path):
    """docs/training.md: the baselines decay too, the CNN by block and the LSTM by layer, top one at the rate."""
    from transformers import AutoModelForAudioClassification

    from hfspeech.models import register
    from hfspeech.training.optim import parameter_groups

    register()
    model = AutoModelForAudioClassification.from_pretrained(save_random_baseline(tmp_path, family, ["a", "b"], 0.02))
    groups = parameter_groups(model, 1e-3, 0.0, set(), layerwise_lr_decay=0.5)
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    by_unit: dict[int, set] = {}
    for name, parameter in model.named_parameters():
        if found := re.search(rf"\.{unit}\.(\d+)\.", name):
            by_unit.setdefault(int(found.group(1)), set()).add(rate[id(parameter)])
    rates = [by_unit[i] for i in sorted(by_unit)]
    assert len(rates) > 1 and all(len(r) == 1 for r in rates)
    assert [r.pop() for r in rates] == [1e-3 * 0.5 ** (len(rates) - 1 - i) for i in range(len(rates))]


def test_a_websocket_past_max_requests_is_refused_at_its_handshake(tmp_path):
    """docs/serving.md: past --max_requests a POST gets 503 `busy`; a WebSocket cannot be answered with a status
    of our choosing before it is accepted, so it is refused at its handshake, which clients see as HTTP 403."""
    import socket

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from hfspeech.serve.launcher import ServerProcess

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.02, conv_channels=[4, 8], n_mels=16)
    with ServerProcess(model, "--max_requests", "1", "--request_timeout", "60") as server:
        with socket.create_connection((server.host, server.port)) as held:  # a POST whose body is still coming
            held.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\nContent-Length: 1000\r\n\r\nRIFF")
            deadline = time.monotonic() + 30
            while True:
                try:
                    with connect(f"ws://{server.host}:{server.port}/stream", open_timeout=30):
                        pass
                except InvalidStatus as refused:
                    assert refused.response.status_code == 403
                    break
                assert time.monotonic() < deadline, "the held POST never counted"
                time.sleep(0.2)
        deadline = time.monotonic() + 30
        while True:  # the held POST has ended: a WebSocket is taken again
            try:
                with connect(f"ws://{server.host}:{server.port}/stream", open_timeout=30) as ws:
                    ws.send("end")
                    assert '"end"' in ws.recv(timeout=30)
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.2)
