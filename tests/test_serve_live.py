"""`hfspeech serve` under load, live streams, the web page in a real browser, and the batcher itself.

- a bounded load test from a second process (benchmarks/serve.py's load client): 500 different clips at
  concurrency 32, every answer the clip's own (`predict`'s label and score), none lost, none duplicated,
  and the server did batch them;
- a WebSocket and a streamed POST get the label events `hfspeech stream` prints for the same PCM;
- the page at `/` in headless Chromium (Debian `chromium`, driven by Playwright): upload a generated clip,
  see the right label, a timeline for a long file, an error line for a bad one; screenshots in the test's tmp_path;
- `--workers 2`: both answer, each counts both, each logs a long path cut, a killed one's metrics files merged.

One server (at `--log_level info`) serves every test but the benchmark's and the two workers', which share another.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
import torch

from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.streaming import StreamingClassifier
from hfspeech.serve.batching import DynamicBatcher
from hfspeech.serve.launcher import ServerProcess
from hfspeech.serve.metrics_folder import folder_prefix
from tests.conftest import synth_clip
from tests.test_access_log38 import assert_long_paths_logged_cut, request_long_paths
from tests.test_serve_edges39 import a_dead_pid, get

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "serve.py"
CHROMIUM = "/usr/bin/chromium"
KINDS = ["low", "high", "noise"]


@pytest.fixture(scope="module")
def server(trained_cnn):
    with ServerProcess(trained_cnn, "--log_level", "info") as running:  # info: the access log (long paths cut)
        yield running


@pytest.fixture(scope="module")
def classifier(trained_cnn) -> AudioClassifier:
    return AudioClassifier.from_pretrained(str(trained_cnn), device=torch.device("cpu"))


def test_load_from_a_second_process_every_answer_right_none_lost_none_duplicated(server, classifier, tmp_path):
    rng = np.random.default_rng(11)
    clips = np.stack([synth_clip(KINDS[i % 3], rng, 16000, 0.5) for i in range(500)]).astype(np.float32)
    np.save(tmp_path / "clips.npy", clips)
    subprocess.run([sys.executable, str(BENCHMARK), "load", "--url", server.url, "--clips", str(tmp_path / "clips.npy"),
                    "--concurrency", "32", "--output", str(tmp_path / "answers.json")], check=True, timeout=300)
    results = json.loads((tmp_path / "answers.json").read_text())
    answers = results["answers"]
    assert len(answers) == 500 and all(a["status"] == 200 for a in answers)  # none lost
    expected = [classifier.classify_waveform(clip, top_k=3) for clip in clips]
    assert [[e["label"] for e in a["answer"]] for a in answers] == [p.labels for p in expected]
    # Each answer is its own clip's: of all 500 clips' scores, its own are the nearest (a crossed or
    # repeated answer would be nearest to another clip's).
    ours = np.array([[e["score"] for e in a["answer"]] for a in answers])
    theirs = np.array([p.scores for p in expected])
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    label_order = [tuple(p.labels) for p in expected]
    distance = np.abs(ours[:, None, :] - theirs[None, :, :]).sum(-1)
    distance[np.array([[a != b for b in label_order] for a in label_order])] = np.inf
    assert (distance.argmin(axis=1) == np.arange(500)).all()
    assert results["ok"] == 500 and results["p99_ms"] >= results["p50_ms"] > 0
    batches = requests.get(f"{server.url}/metrics", timeout=10).text
    count = float(re.search(r"^hfspeech_batch_size_count (\S+)$", batches, re.M).group(1))
    windows = float(re.search(r"^hfspeech_batch_size_sum (\S+)$", batches, re.M).group(1))
    assert windows >= 500 and windows / count > 1.5, "concurrent requests were not batched"
    print(f"load: 500 requests in {results['wall_seconds']:.1f} s, p50 {results['p50_ms']:.1f} ms, "
          f"p99 {results['p99_ms']:.1f} ms, mean batch {windows / count:.1f}")


def pcm_and_reference(classifier, min_windows: int = 2, threshold: float = 0.35):
    """A 3 s clip as int16 PCM at 8 kHz in uneven chunks, and the events `hfspeech stream` gives for it."""
    rng = np.random.default_rng(3)
    audio = np.concatenate([synth_clip(kind, rng, 8000, 1.0) for kind in KINDS])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    cuts = np.cumsum(rng.integers(500, 3000, size=40))
    chunks = [c.tobytes() for c in np.split(pcm, cuts[cuts < len(pcm)]) if len(c)]
    streamer = StreamingClassifier(classifier, input_rate=8000, min_windows=min_windows, threshold=threshold,
                                   offsets=True)
    events = [e.to_dict() for chunk in chunks for w in streamer.feed(np.frombuffer(chunk, "<i2")) for e in w.events]
    events += [e.to_dict() for w in streamer.finish() for e in w.events]
    events += [e.to_dict() for e in streamer.ended_at_finish]
    return chunks, events + [streamer.stats.to_dict()]


def assert_same_events(ours: list[dict], reference: list[dict]) -> None:
    assert [(e["event"], e.get("label"), e.get("start"), e.get("end")) for e in ours] == \
        [(e["event"], e.get("label"), e.get("start"), e.get("end")) for e in reference]
    assert [e.get("score", 0) for e in ours] == pytest.approx([e.get("score", 0) for e in reference], abs=1e-4)


def test_websocket_and_streamed_post_send_the_events_hfspeech_stream_prints(server, classifier):
    from websockets.sync.client import connect

    chunks, reference = pcm_and_reference(classifier)
    assert sum(e["event"] == "label" for e in reference) >= 2
    assert sum(e["event"] == "ended" for e in reference) == sum(e["event"] == "label" for e in reference)
    with connect(server.url.replace("http", "ws") + "/stream?rate=8000&min_windows=2&threshold=0.35") as websocket:
        for chunk in chunks:
            websocket.send(chunk)
        websocket.send("end")
        received = [json.loads(message) for message in websocket]
    assert_same_events(received, reference)
    posted = requests.post(f"{server.url}/stream?rate=8000&min_windows=2&threshold=0.35", data=iter(chunks), timeout=60)
    assert posted.headers["content-type"].startswith("application/x-ndjson")
    assert_same_events([json.loads(line) for line in posted.text.splitlines()], reference)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh)")
def test_web_page_classifies_an_upload_in_headless_chromium(server, classifier, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    rng = np.random.default_rng(5)
    clip, long = tmp_path / "high_tone.wav", tmp_path / "three_seconds.wav"
    sf.write(clip, synth_clip("high", rng, 16000, 0.5), 16000)
    sf.write(long, np.concatenate([synth_clip(kind, rng, 16000, 1.0) for kind in KINDS]), 16000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    expected = classifier.classify_file(str(clip), top_k=3)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(server.url)
        expect(page.locator("#model-info")).to_contain_text("3 labels")
        page.set_input_files("#file", str(clip))
        expect(page.locator("#result .row")).to_have_count(3)
        assert page.locator("#result .label").all_text_contents() == expected.labels
        assert page.locator("#result .score").first.text_content() == f"{expected.scores[0]:.3f}"
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        page.set_input_files("#file", str(long))
        expect(page.locator("#timeline-section")).to_be_visible()
        expect(page.locator("#status")).to_contain_text("windows")
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
        page.set_input_files("#file", str(tmp_path / "bad.wav"))
        expect(page.locator("#status.error")).to_contain_text("cannot be decoded")
        browser.close()
    for name in ("page.png", "timeline.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    print(f"screenshots: {tmp_path / 'page.png'}, {tmp_path / 'timeline.png'}")

def run_batcher(max_batch_size: int, requests_windows: list[list[int]], fail_on=None):
    sizes = []

    def run(items):
        sizes.append(len(items))
        if fail_on is not None and fail_on in items:
            raise RuntimeError("model failed")
        time.sleep(0.005)
        return [item * 2 for item in items]

    async def main():
        batcher = DynamicBatcher(run, max_batch_size=max_batch_size, max_wait_ms=20)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(items) for items in requests_windows), return_exceptions=True)
        await batcher.stop()
        return results

    return asyncio.run(main()), sizes


def test_batcher_gathers_concurrent_requests_and_keeps_answers_apart():
    windows = [[i, 100 + i] for i in range(20)] + [list(range(200, 230))]
    results, sizes = run_batcher(8, windows)
    assert results == [[2 * x for x in items] for items in windows]
    assert sum(sizes) == 70 and max(sizes) == 8 and len(sizes) == 9  # full batches of 8, then the rest
    results, sizes = run_batcher(1, windows[:5])
    assert results == [[2 * x for x in items] for items in windows[:5]] and sizes == [1] * 10
    results, _ = run_batcher(4, [[1], [2], [3], [4], [5]], fail_on=5)  # the failing batch only
    assert results[:4] == [[2], [4], [6], [8]] and isinstance(results[4], RuntimeError)


def test_serving_benchmark_runs_and_reports_the_ratio(trained_cnn, tmp_path):
    output = tmp_path / "serve.json"
    subprocess.run([sys.executable, str(BENCHMARK), "--model", str(trained_cnn), "--requests", "48",
                    "--concurrency", "8", "--work_dir", str(tmp_path), "--output", str(output)], check=True, timeout=600)
    results = json.loads(output.read_text())
    assert results["all_answered"] and results["same_top_labels"]
    assert results["one_at_a_time"]["mean_batch_size"] == 1.0 < results["batched"]["mean_batch_size"]
    assert results["throughput_ratio"] > 0 and isinstance(results["meets_target"], bool)
    assert results["machine"]["cpu_count"] >= 1


def test_the_server_logs_a_long_path_cut(server):
    """One process (the two workers' case is in the test below); from test_access_log38, on this file's server."""
    request_long_paths(server.url)
    assert_long_paths_logged_cut(server.output())


def test_two_workers_answer_count_both_log_long_paths_cut_and_merge_a_killed_ones_files(trained_cnn, classifier,
                                                                                       tmp_path):
    """The real `hfspeech serve --workers 2`, its temporary folder in tmp_path (TMPDIR): one server for what three
    tests checked each with its own (this file's two-worker test, test_access_log38's and test_serve_edges39's):
    a supervisor sweeps a killed one's folder, both workers answer and each scrape counts both, each logs a long
    path cut, and a restarted worker merges its predecessor's files."""
    rng = np.random.default_rng(21)
    clips = [synth_clip(KINDS[i % 3], rng, 16000, 0.5) for i in range(12)]
    left_behind = Path(tempfile.mkdtemp(prefix=folder_prefix(a_dead_pid()), dir=tmp_path))
    (left_behind / f"counter_{a_dead_pid()}.db").write_bytes(b"")
    with ServerProcess(trained_cnn, "--workers", "2", "--log_level", "info", startup_timeout=240,
                       env={"TMPDIR": str(tmp_path)}) as running:
        assert not left_behind.exists()
        [folder] = tmp_path.glob(f"{folder_prefix(running.process.pid)}*")
        for clip in clips:
            path = tmp_path / "clip.wav"
            sf.write(path, clip, 16000, subtype="FLOAT")
            answer = requests.post(running.url, data=path.read_bytes(), timeout=60).json()
            assert answer[0]["label"] == classifier.classify_waveform(clip).labels[0]
        metrics = requests.get(f"{running.url}/metrics", timeout=10).text
        # Whichever worker answered the scrape, it counts the requests of both (prometheus multiprocess mode).
        posted = 'hfspeech_requests_total{route="/",status="200"} 12.0'
        assert re.search(rf"^{re.escape(posted)}$", metrics, re.M), metrics
        request_long_paths(running.url)  # each worker is likely to answer one
        for _ in range(6):
            get(f"{running.url}/info")
        counted = 'hfspeech_requests_total{route="/info",status="200"} 6.0'
        deadline = time.monotonic() + 60  # a request is counted just after its answer is sent
        while len(workers := {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("counter_*[0-9].db")}) < 2 \
                or counted not in get(f"{running.url}/metrics"):
            assert time.monotonic() < deadline, "the workers did not both write their files"
            time.sleep(0.2)
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 180
        while list(folder.glob(f"*_{killed}.db")) or running.health() != "ok":  # until its successor merged it
            assert time.monotonic() < deadline, sorted(path.name for path in folder.iterdir())
            time.sleep(0.5)
        assert {path.name for path in folder.glob("*_dead.db")} == {"counter_dead.db", "histogram_dead.db"}
        merged = get(f"{running.url}/metrics")
        assert counted in merged and posted in merged
        log = running.output()
    assert not folder.exists()
    assert_long_paths_logged_cut(log)


def test_error_messages_lose_paths_and_extra_lines():
    from hfspeech.serve.errors import scrub

    assert scrub("cannot open /tmp/x/clip.wav: bad header\n  File \"/work/a.py\"") == "cannot open <path>: bad header"
    assert scrub("C:\\Users\\me\\clip.wav is broken") == "<path> is broken"
    assert scrub("resampled 16000/8000, ratio 1/2") == "resampled 16000/8000, ratio 1/2"
