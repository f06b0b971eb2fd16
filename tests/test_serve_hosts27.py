"""Who a loopback `hfspeech serve` answers: requests addressed to this machine's names (or `--allowed_hosts`),
not a web page that rebinds its own DNS name to 127.0.0.1 (its browser sends `Host: evil.example`), nor a
WebSocket opened by another site's page; and the API key sent with the scheme in any case (RFC 7235).

The server runs in-process (Starlette's TestClient on `create_app`) on a small random-weight CNN; the
TestClient's address is set to 127.0.0.1 so that its Host is one a loopback server answers.
"""

from __future__ import annotations

import pytest
from conftest import save_random_baseline

from hfspeech.serve.access import names_to_answer
from hfspeech.serve.app import ServeSettings, create_app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from starlette.testclient import TestClient

    folder = save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                  conv_channels=[4, 8])
    # a string, as the flag takes it ("a,b"): one name, not a list of its letters
    settings = ServeSettings(model=str(folder), request_timeout=5.0, api_key=KEY, allowed_hosts="proxy.lan")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as running:
        assert running.get("/info", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        yield running


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil",
                                  "p", "proxy.lan.evil.example"])
def test_a_request_addressed_to_another_name_is_refused_before_the_key_is_checked(client, host):
    """A page of evil.example that rebound its name to 127.0.0.1 read every answer (no key: the model's labels;
    a 401 told it a key is set)."""
    answer = client.get("/info", headers={"Host": host, "Authorization": f"Bearer {KEY}"})
    assert (answer.status_code, answer.json()["kind"]) == (403, "forbidden_host"), answer.text
    assert answer.json()["error"] == f"Host {host!r} is not a name of this server (--allowed_hosts adds one)"
    assert client.get("/health", headers={"Host": host}).status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "proxy.lan",
                                  "Proxy.LAN:443"])
def test_this_machines_names_and_the_allowed_ones_are_answered(client, host):
    answer = client.get("/info", headers={"Host": host, "Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200, answer.text


def test_a_websocket_to_another_name_or_from_another_sites_page_is_refused(client):
    from starlette.websockets import WebSocketDisconnect

    here = {"Host": "127.0.0.1:8080"}  # the TestClient's WebSockets say `testserver` whatever its base_url
    refusals = {"Host 'evil.example' is not": {"Host": "evil.example"},
                "the page 'http://evil.example', another site": {**here, "Origin": "http://evil.example"},
                "the page 'null', another site": {**here, "Origin": "null"}}  # a sandboxed frame's page
    for reason, headers in refusals.items():
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(f"/stream?api_key={KEY}", headers=headers) as socket:
                socket.receive_text()
        assert (refused.value.code, reason in refused.value.reason) == (1008, True), refused.value.reason
    # the server's own page (and a client that sends no Origin) still streams
    for headers in ({"Origin": "http://127.0.0.1:8080"}, {"Origin": "http://localhost:8080"}, {}):
        with client.websocket_connect(f"/stream?api_key={KEY}", headers={**here, **headers}) as socket:
            socket.send_bytes(b"\0\0" * 16000)
            socket.send_text("end")
            assert "event" in socket.receive_json(), headers


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_read_in_any_case(client, scheme):
    """`Authorization: bearer KEY` was a 401: the scheme is case-insensitive (RFC 7235)."""
    assert client.get("/info", headers={"Authorization": f"{scheme} {KEY}"}).status_code == 200
    assert client.get("/info", headers={"Authorization": f"{scheme} wrong"}).status_code == 401


def test_loopback_binding_answers_its_own_names_only_unless_told():
    assert names_to_answer("127.0.0.1", None) == []
    assert names_to_answer("localhost", None) == []
    assert names_to_answer("::1", ["myhost"]) == ["myhost"]
    assert names_to_answer("0.0.0.0", None) is None  # beyond loopback: as before, any name
    assert names_to_answer("0.0.0.0", ["myhost"]) == ["myhost"]


def test_allowed_hosts_flag(capsys):
    from hfspeech.cli.serve import serve_parser

    args = serve_parser().parse_args(["model", "--allowed_hosts", "Proxy.Example.com, *.lan,[::1]"])
    assert args.allowed_hosts == ["proxy.example.com", "*.lan", "[::1]"]
    with pytest.raises(SystemExit):
        serve_parser().parse_args(["model", "--allowed_hosts", "http://proxy:8080"])
    assert "'http://proxy:8080' is not a host name" in capsys.readouterr().err


def test_the_key_in_x_api_key_counts_beside_another_authorization_scheme(client):
    """A reverse proxy's `Authorization: Basic ...` hid the `X-API-Key` sent with it (401)."""
    answer = client.get("/info", headers={"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": KEY})
    assert answer.status_code == 200, answer.text
    assert client.get("/info", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    assert client.get("/info", headers={"Authorization": KEY}).status_code == 200  # a bare key, as before
