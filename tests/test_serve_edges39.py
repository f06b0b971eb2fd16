"""The rough edges a long-running server showed: a model that failed to load left no trace in `/metrics` (its 503s
are rightly no error), a `--workers` server's metrics folder gained 2 files per restarted worker and outlived a
SIGKILLed supervisor in the temporary folder, a browser's `/favicon.ico` was a 404 (a 401 with a key) counted as
an error, the page's top-k 0 or empty box became 5 without a word, and a null score was "–" to a screen reader.

In-process apps (Starlette's TestClient), metrics files written by real processes that have exited, and the page in
headless Chromium (against the real server, or stubbed answers). The real `hfspeech serve --workers 2` sweeping a
killed supervisor's folder and merging a killed worker's files is tested in test_serve_live.py, on the two-worker
server it starts anyway."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from hfspeech.serve.app import ServeSettings, create_app
from hfspeech.serve.environment import METRICS_DIR_ENV
from hfspeech.serve.launcher import ServerProcess
from hfspeech.serve.metrics import ServerMetrics
from hfspeech.serve.metrics_folder import folder_prefix
from hfspeech.serve.metrics_folder import dead_workers_merged, remove_orphaned_folders
from tests.conftest import save_random_baseline

CHROMIUM = "/usr/bin/chromium"
LABELS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("model") / "cnn", "cnn", LABELS, 0.5, conv_channels=[4, 8],
                                n_mels=16)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("hfspeech_errors_total{")]


def test_a_model_that_failed_to_load_is_counted_as_an_error_once(tmp_path):
    from starlette.testclient import TestClient

    (tmp_path / "not-a-model").mkdir()
    with TestClient(create_app(ServeSettings(model=str(tmp_path / "not-a-model")))) as client:
        deadline = time.monotonic() + 30
        while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json() == {"status": "error"}
        for _ in range(2):  # once per failed load, not once per probe or scrape
            assert error_lines(client.get("/metrics").text) == ['hfspeech_errors_total{kind="model_load"} 1.0']


def test_the_favicon_is_no_content_needs_no_key_and_is_no_error(model):
    """At 0 from the start on a server that loaded: an alert on `increase()` sees a first failure."""
    from starlette.testclient import TestClient

    with TestClient(create_app(ServeSettings(model=str(model), api_key="secret"))) as client:
        assert client.get("/info", headers={"Authorization": "Bearer secret"}).status_code == 200
        icon = client.get("/favicon.ico")
        assert (icon.status_code, icon.content) == (204, b"")
        scraped = client.get("/metrics", headers={"Authorization": "Bearer secret"}).text
    assert error_lines(scraped) == ['hfspeech_errors_total{kind="model_load"} 0.0']
    assert 'hfspeech_requests_total{route="/favicon.ico",status="204"} 1.0' in scraped


def a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def written_by_a_process_that_exits(folder: Path, requests: int) -> None:
    """What a worker writes in prometheus_client's multiprocess mode, by a real process that then ends."""
    code = ("from hfspeech.serve.metrics import ServerMetrics; m = ServerMetrics()\n"
            f"for _ in range({requests}): m.observe_request('/', 200, 0.2)\n"
            "m.errors.labels('bad_json').inc(); m.batch_size.observe(3)")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, METRICS_DIR_ENV: str(folder)}, check=True)


def scraped(folder: Path) -> list[str]:
    """prometheus_client's own sum of the folder's files, as they are."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return sorted(generate_latest(registry).decode().splitlines())


def test_dead_workers_files_are_merged_and_every_count_kept(tmp_path, monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix=folder_prefix(os.getpid()), dir=tmp_path))  # as a supervisor names it
    written_by_a_process_that_exits(folder, 2)
    written_by_a_process_that_exits(folder, 3)
    assert len(list(folder.glob("*.db"))) == 4
    before = scraped(folder)
    assert 'hfspeech_requests_total{route="/",status="200"} 5.0' in before
    dead_workers_merged(folder)
    assert sorted(path.name for path in folder.glob("*.db")) == ["counter_dead.db", "histogram_dead.db"]
    assert scraped(folder) == before
    written_by_a_process_that_exits(folder, 1)  # a worker replaced while this one serves: merged by a scrape
    monkeypatch.setenv(METRICS_DIR_ENV, str(folder))
    after = sorted(ServerMetrics().response().body.decode().splitlines())
    assert after == scraped(folder)
    assert sorted(path.name for path in folder.glob("*.db")) == ["counter_dead.db", "histogram_dead.db"]
    assert 'hfspeech_requests_total{route="/",status="200"} 6.0' in after
    assert 'hfspeech_errors_total{kind="bad_json"} 3.0' in after and "hfspeech_batch_size_count 3.0" in after
    assert 'hfspeech_request_seconds_bucket{le="0.25",route="/"} 6.0' in after


def test_a_metrics_folder_the_user_chose_is_left_as_it_is(tmp_path):
    folder = tmp_path / "my-metrics"
    folder.mkdir()
    written_by_a_process_that_exits(folder, 1)
    files = sorted(path.name for path in folder.iterdir())
    dead_workers_merged(folder)
    assert sorted(path.name for path in folder.iterdir()) == files


def test_only_this_users_folders_of_supervisors_and_workers_all_gone_are_removed(tmp_path):
    dead, alive = a_dead_pid(), os.getpid()
    made = {name: Path(tempfile.mkdtemp(prefix=folder_prefix(pid), dir=tmp_path))
            for name, pid in [("dead", dead), ("dead with dead workers", dead), ("dead, a worker serving", dead),
                              ("running", alive), ("another user's", dead)]}
    (made["dead with dead workers"] / f"counter_{a_dead_pid()}.db").write_bytes(b"")
    (made["dead, a worker serving"] / f"histogram_{alive}.db").write_bytes(b"")  # an orphaned worker serves on
    if os.getuid() == 0:  # root may give a folder away: nobody's
        os.chown(made["another user's"], 65534, 65534)
    else:
        made.pop("another user's")
    theirs, target = tmp_path / f"{folder_prefix(dead)}link", tmp_path / "target"
    target.mkdir()
    theirs.symlink_to(target)
    (tmp_path / "hfspeech-metrics-abcd1234").mkdir()  # named before pids were: whose it is cannot be told
    removed = remove_orphaned_folders(str(tmp_path))
    assert sorted(removed) == sorted(made[name].name for name in ("dead", "dead with dead workers"))
    assert all(path.exists() for name, path in made.items() if name not in ("dead", "dead with dead workers"))
    assert theirs.is_symlink() and target.is_dir() and (tmp_path / "hfspeech-metrics-abcd1234").is_dir()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def silence_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(16000)
        clip.writeframes((np.random.default_rng(0).normal(0, 3000, 16000)).astype("<i2").tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def test_the_page_sends_top_k_as_typed_and_its_browser_meets_no_error(model, browser, tmp_path):
    """top-k 0 is the server's own 400, said in the page; empty, the server's --top_k; the favicon no 404."""
    from playwright.sync_api import expect

    clip = tmp_path / "clip.wav"
    clip.write_bytes(silence_wav())
    with ServerProcess(model, "--top_k", "3") as server:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_function("document.getElementById('model-info').textContent.includes('4 labels')")
        page.fill("#top-k", "0")
        page.set_input_files("#file", str(clip))
        expect(page.locator("[role=alert]")).to_have_text("Error: clip.wav: top_k must be at least 1, got 0")
        page.fill("#top-k", "")
        page.set_input_files("#file", [])
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#result .row")
        assert page.locator("#result li.row").count() == 3  # the server's default, not the page's 5
        page.close()
        scrape = get(f"{server.url}/metrics")
    assert 'route="/favicon.ico",status="204"' in scrape  # the browser asked for it
    assert [line for line in error_lines(scrape) if not line.endswith(" 0.0")] == [
        'hfspeech_errors_total{kind="bad_parameters"} 1.0']  # the top-k 0, and no not_found


NULL_ANSWER = {"predictions": [{"label": "rain", "score": None}, {"label": "engine", "score": 0.25}],
               "num_windows": 2, "aggregate": "mean", "active_labels": [], "labels": ["rain", "engine"],
               "windows": [{"index": i, "start": i * 1.0, "end": i + 1.0, "labels": ["rain"], "scores": [None],
                            "active_labels": [], "skipped": False, "inactive": False} for i in range(2)]}


def test_a_null_score_is_said_no_score(browser, tmp_path):
    """Stubbed answers (a NaN-weight model's nulls): what the accessibility tree holds, not what shows."""
    static = Path(__file__).resolve().parent.parent / "hfspeech" / "serve" / "static"

    def stub(route):
        url = route.request.url
        if url.endswith("/info"):
            return route.fulfill(json={"labels": ["rain", "engine"], "sampling_rate": 16000, "backend": "pytorch",
                                       "window_seconds": 1.0, "revision": "test"})
        if "/static/" in url:
            name = url.rsplit("/", 1)[1]
            kind = {"js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
            return route.fulfill(body=(static / name).read_bytes(), content_type=kind)
        if route.request.method == "POST":
            return route.fulfill(json=NULL_ANSWER)
        return route.fulfill(body=(static / "index.html").read_bytes(), content_type="text/html")

    page = browser.new_page()
    page.route("http://localhost:8399/**", stub)
    page.goto("http://localhost:8399/")
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    page.set_input_files("#file", str(tmp_path / "clip.wav"))
    page.wait_for_selector("#timeline-section:not([hidden])")
    tree = page.locator("#result").aria_snapshot()
    assert "rain no score" in tree and "–" not in tree, tree
    assert page.locator("#status-text").text_content() == "clip.wav: 2 windows · top: rain (no score)"
    assert page.locator("#result li.row .score [aria-hidden=true]").first.text_content() == "–"  # what shows
    cell = page.locator("#timeline-table tbody td").first
    assert cell.text_content() == "rain (–)" and cell.get_attribute("aria-label") == "rain (no score)"
    page.close()
