"""What `hfspeech serve` exposes to a client on the network, and to the operator's terminal:

- an upload that is a list of other resources (an ffconcat script, a DASH manifest, an SDP description),
  which ffmpeg would open: files beside the server, any HTTP address (SSRF), UDP ports;
- binding every interface without an API key is said, once; NO_COLOR reaches uvicorn's log.

The server runs in-process (Starlette's TestClient on `create_app`) on a small random-weight CNN.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from conftest import save_random_baseline

from hfspeech.serve.app import ServeSettings, create_app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from starlette.testclient import TestClient

    folder = save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                  conv_channels=[4, 8])
    with TestClient(create_app(ServeSettings(model=str(folder), request_timeout=5.0))) as running:
        assert running.get("/info").status_code == 200
        yield running


def wav_bytes(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(0).normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000,
             format="WAV")
    return buffer.getvalue()


ID3_TAG = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\0" * 10  # ffmpeg skips it before it probes the format


@pytest.mark.parametrize("prefix", [b"", ID3_TAG], ids=["plain", "behind-id3"])
def test_an_ffconcat_upload_does_not_read_a_file_beside_the_server(client, tmp_path, monkeypatch, prefix):
    """It used to answer the labels of `secret.wav` in the server's working folder (and 'No such file or
    directory' for a name that is not there: which files exist)."""
    (tmp_path / "secret.wav").write_bytes(wav_bytes())
    monkeypatch.chdir(tmp_path)
    for name in ("secret.wav", "absent.wav"):
        answer = client.post("/", content=prefix + f"ffconcat version 1.0\nfile {name}\n".encode())
        assert (answer.status_code, answer.json()["kind"]) == (400, "undecodable_audio"), answer.text
        assert answer.json()["error"] == "upload: an ffconcat script, not audio: hfspeech does not open the " \
            "files or addresses an audio file names"


def test_a_dash_manifest_upload_does_not_make_the_server_fetch_its_url(client):
    """ffmpeg's DASH demuxer sent `GET /x.wav` to the address the upload named (SSRF)."""
    from tests.test_media_references27 import dash_manifest_watched

    with dash_manifest_watched() as (manifest, connections):
        answer = client.post("/", content=manifest, headers={"Content-Type": "application/octet-stream"})
    assert connections == [None], "the server connected to the address in the upload"
    assert (answer.status_code, answer.json()["kind"]) == (400, "undecodable_audio"), answer.text
    assert "a DASH manifest, not audio" in answer.json()["error"]


def test_an_sdp_upload_is_refused_at_once_rather_than_opening_udp_ports(client):
    """It used to open UDP ports on every interface and wait for RTP until the request timed out."""
    sdp = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 18731 RTP/AVP 0\r\n"
    answer = client.post("/", content=sdp)
    assert (answer.status_code, answer.json()["kind"]) == (400, "undecodable_audio"), answer.text
    assert "an SDP stream description, not audio" in answer.json()["error"]


def test_real_audio_is_still_classified(client, fsdd_dir):
    for body in (wav_bytes(), next(fsdd_dir.rglob("*.wav")).read_bytes()):
        answer = client.post("/", content=body)
        assert answer.status_code == 200, answer.text


def terminal_output(argv: list[str], env: dict, timeout: float = 120.0) -> tuple[int, str]:
    """(exit status, what `argv` wrote) run on a pseudo-terminal, as an operator's shell runs it."""
    import os
    import pty
    import select
    import subprocess
    import time

    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, f"still running after {timeout} s: {output!r}"
            if not select.select([leader], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every process has closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return process.wait(), output.decode(errors="replace")


def test_serve_on_every_interface_warns_once_and_its_log_heeds_no_color(tmp_path):
    """A server open to the network used to start without a word, and uvicorn coloured its log on a terminal
    whatever NO_COLOR said. The empty model folder stops the server once uvicorn has logged its start."""
    import os
    import sys

    from hfspeech.serve.launcher import free_port

    env = {key: value for key, value in os.environ.items() if key != "HFSPEECH_API_KEY"}
    status, output = terminal_output([sys.executable, "-m", "hfspeech.cli", "serve", str(tmp_path), "--host",
                                      "0.0.0.0", "--port", str(free_port("0.0.0.0"))], {**env, "NO_COLOR": "1"})
    assert status == 2 and "Uvicorn running on" in output, output
    assert output.count("warning: --host 0.0.0.0 listens beyond this machine and no API key is set: anyone who "
                        "can reach it may use the model (set HFSPEECH_API_KEY)") == 1, output
    assert "\x1b[" not in output, output


@pytest.mark.parametrize("host, api_key, warning", [
    ("127.0.0.1", None, ""), ("localhost", None, ""), ("::1", "key", ""),
    ("0.0.0.0", "key", "warning: --host 0.0.0.0 listens beyond this machine over plain HTTP: the API key and the "
     "audio cross the network unencrypted (put a TLS proxy in front)\n"),
])
def test_only_an_address_beyond_this_machine_is_warned_of(host, api_key, warning, capsys):
    from hfspeech.cli.serve import warn_if_exposed

    warn_if_exposed(host, api_key)
    assert capsys.readouterr().err == warning


def test_the_page_may_load_only_the_servers_own_files_and_not_be_framed(client):
    """Its script already loads nothing from elsewhere and writes model text as text (a label such as
    `<img src=x onerror=...>` is shown, not run); the headers make a browser hold any page to that."""
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = {part.strip() for part in page.headers["content-security-policy"].split(";")}
    assert {"default-src 'self'", "frame-ancestors 'none'"} <= policy
    assert page.headers["x-content-type-options"] == "nosniff"


def test_looking_for_references_costs_one_scan_whatever_the_upload():
    """A body of thousands of empty ID3 tags, or 25 MB without a NUL byte, is looked at in well under a second."""
    import time

    from hfspeech.data.media_references import media_reference_kind

    for body in (b"ID3\x04\x00\x00\x00\x00\x00\x00" * 2_500_000, b"a" * 25_000_000):
        started = time.perf_counter()
        assert media_reference_kind(body) is None
        assert time.perf_counter() - started < 1.0
