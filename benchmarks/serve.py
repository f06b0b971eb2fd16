"""Serving benchmark: `hfspeech serve` with dynamic batching against one-at-a-time (`--max-batch-size 1`), same
model, same clips, same machine, one run.

    python benchmarks/serve.py                                  # a demo-sized CNN (random weights), 500 requests
    python benchmarks/serve.py --model runs/demo/model --requests 1000 --concurrency 32

Each side is the real server in its own process (both up at once, taking turns round by round, so that a
changing machine load slows both alike); the load comes from this process: `--concurrency` threads,
each with a keep-alive connection, POST a different generated 1 s WAV clip per request (the Hub's raw-bytes
form) until `--requests` are answered. Reported per side: p50/p99 latency (request sent to answer read),
throughput (answers per second over the whole run), the mean batch size the server ran (from its /metrics);
and the ratio batched / one-at-a-time. Both sides must answer every request, with the same top label.
Printed, and written to --output (JSON: the machine, the settings, both sides, the ratio, the target).

`python benchmarks/serve.py load --url URL --clips CLIPS.npy --output ANSWERS.json` is the load client alone
(tests/test_serve_live.py runs it from a second process against a server it started).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _checks import existing_model, run_script, writable_path  # noqa: E402  (first: no downloads)
from _common import CLASSES, machine, synth_clip, write_json  # noqa: E402

from hfspeech.cli.flags import number_in, positive  # noqa: E402
from hfspeech.errors import UsageError  # noqa: E402

SAMPLING_RATE = 16000
TARGET_RATIO = 3.0


def wav_bytes(waveform: np.ndarray, rate: int = SAMPLING_RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def generate_waveforms(count: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """`count` different clips `[count, samples]`, cycling the benchmark classes."""
    rng = np.random.default_rng(seed)
    kinds = list(CLASSES)
    return np.stack([synth_clip(kinds[i % len(kinds)], rng, SAMPLING_RATE, seconds) for i in range(count)])


def run_load(url: str, bodies: list[bytes], concurrency: int, api_key: str | None = None) -> dict:
    """POST every body once from `concurrency` threads (keep-alive connections); answers by request index."""
    target = urlparse(url)
    headers = {"Content-Type": "audio/wav", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    answers: list = [None] * len(bodies)
    next_index, lock = iter(range(len(bodies))), threading.Lock()

    def worker():
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                connection.request("POST", "/", body=bodies[index], headers=headers)
                response = connection.getresponse()
                status, text = response.status, response.read().decode()
            except OSError as error:  # counted as lost: the run reports it rather than stopping
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                status, text = 0, json.dumps({"error": f"{type(error).__name__}: {error}"})
            answers[index] = {"status": status, "answer": json.loads(text) if text else None,
                              "seconds": time.perf_counter() - started}
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"answers": answers, "wall_seconds": wall, **latency_summary(answers, wall)}


def latency_summary(answers: list, wall: float) -> dict:
    seconds = np.array([a["seconds"] for a in answers if a and a["status"] == 200])
    ok = int(seconds.size)
    return {"ok": ok, "p50_ms": float(np.percentile(seconds, 50) * 1000) if ok else None,
            "p99_ms": float(np.percentile(seconds, 99) * 1000) if ok else None,
            "throughput_per_s": ok / wall if wall > 0 else 0.0}


def save_benchmark_model(folder: Path) -> Path:
    """The demo's CNN (default size, 1 s window) with random weights: the timing does not depend on them."""
    import hfspeech  # noqa: F401  (registers the baselines)
    from hfspeech.models import BASELINE_MODELS

    spec = BASELINE_MODELS["cnn"]
    labels = list(CLASSES)
    config = spec.config_class(num_labels=len(labels), id2label=dict(enumerate(labels)),
                               label2id={label: i for i, label in enumerate(labels)}, max_length_seconds=1.0)
    spec.model_class(config).save_pretrained(folder)
    spec.feature_extractor_class().save_pretrained(folder)
    return folder


def measure(model: str, bodies: list[bytes], concurrency: int, max_batch_size: int, rounds: int,
            extra_flags: list[str]) -> dict:
    """Both sides' servers run at once (an idle server costs nothing) and take turns, round by round, each
    round a slice of the requests, the order swapped every round: a machine whose load changes during the run
    slows both sides alike. Each side is measured on all the requests."""
    from hfspeech.serve.launcher import ServerProcess

    sides = {"batched": max_batch_size, "one_at_a_time": 1}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(ServerProcess(model, "--max-batch-size", str(size), *extra_flags))
                   for name, size in sides.items()}
        for server in servers.values():
            run_load(server.url, bodies[: min(len(bodies), 2 * concurrency)], concurrency)  # warm-up
        batches_before = {name: batch_totals(server.url) for name, server in servers.items()}
        answers = {name: [] for name in sides}
        walls = {name: 0.0 for name in sides}
        slices = np.array_split(np.arange(len(bodies)), rounds)
        for index, part in enumerate(slices):
            for name in (list(sides) if index % 2 == 0 else list(sides)[::-1]):
                result = run_load(servers[name].url, [bodies[i] for i in part], concurrency)
                answers[name] += result["answers"]
                walls[name] += result["wall_seconds"]
        results = {}
        for name, server in servers.items():
            windows, batches = np.subtract(batch_totals(server.url), batches_before[name])
            results[name] = {"answers": answers[name], "wall_seconds": walls[name],
                             **latency_summary(answers[name], walls[name]),
                             "mean_batch_size": windows / batches if batches else None}
    return results


def batch_totals(url: str) -> tuple[float, float]:
    """(windows run, batches run) so far, from the server's Prometheus histogram."""
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    connection.request("GET", "/metrics")
    values = {}
    for line in connection.getresponse().read().decode().splitlines():
        if line.startswith(("hfspeech_batch_size_sum", "hfspeech_batch_size_count")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("hfspeech_batch_size_sum", 0.0), values.get("hfspeech_batch_size_count", 0.0)


def model_alone(model: str, max_batch_size: int) -> dict:
    """The model call alone in this process, one clip vs a full batch: the most batching can gain here."""
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(model)
    clips = list(generate_waveforms(max_batch_size, seed=2))
    timings = {}
    for size in (1, max_batch_size):
        classifier.logits(clips[:size])
        started = time.perf_counter()
        for _ in range(3):
            for start in range(0, max_batch_size, size):
                classifier.logits(clips[start : start + size])
        timings[size] = (time.perf_counter() - started) / (3 * max_batch_size)
    return {"ms_per_clip_one_at_a_time": timings[1] * 1000, "ms_per_clip_batched": timings[max_batch_size] * 1000,
            "ratio": timings[1] / timings[max_batch_size]}


def benchmark(args) -> dict:
    if args.model:
        model = args.model
    else:
        model = str(save_benchmark_model(Path(args.work_dir) / "model"))
    bodies = [wav_bytes(w) for w in generate_waveforms(args.requests, seed=1)]
    flags = ["--max-wait-ms", str(args.max_wait_ms)]
    load_before = os.getloadavg()[0]
    sides = measure(model, bodies, args.concurrency, args.max_batch_size, args.rounds, flags)
    top = {name: [a["answer"][0]["label"] if a and a["status"] == 200 else None for a in side.pop("answers")]
           for name, side in sides.items()}
    ratio = sides["batched"]["throughput_per_s"] / sides["one_at_a_time"]["throughput_per_s"]
    return {"model": model, "requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
            "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms, **sides,
            "all_answered": all(side["ok"] == args.requests for side in sides.values()),
            "same_top_labels": top["batched"] == top["one_at_a_time"],
            "throughput_ratio": ratio, "meets_target": ratio >= TARGET_RATIO, "target_ratio": TARGET_RATIO,
            "model_alone": model_alone(model, args.max_batch_size), "load_average_1min_at_start": load_before,
            "machine": machine()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("load", help="the load client alone, against a running server")
    load.add_argument("--url", required=True)
    load.add_argument("--clips", required=True, help=".npy of waveforms [count, samples] at 16 kHz")
    load.add_argument("--concurrency", type=positive(int), default=32)
    load.add_argument("--api-key", default=None)
    load.add_argument("--output", required=True)
    parser.add_argument("--model", default=None, help="model to serve (default: a demo-sized random CNN)")
    parser.add_argument("--requests", type=positive(int), default=500)
    parser.add_argument("--concurrency", type=positive(int), default=32)
    parser.add_argument("--max-batch-size", type=number_in(int, 2, 100000), default=32,
                        help="the batched side's (the other runs 1)")
    parser.add_argument("--max-wait-ms", type=number_in(float, 0, 60000), default=5.0)
    parser.add_argument("--rounds", type=positive(int), default=5,
                        help="turns each side takes (the requests split evenly)")
    parser.add_argument("--work_dir", default="runs/bench_serve", help="the generated model goes here")
    parser.add_argument("--output", help="JSON results (default: WORK_DIR/serve.json)")
    args = parser.parse_args(argv)
    if args.command != "load" and args.rounds > args.requests:
        parser.error(f"--rounds {args.rounds}: more rounds than --requests {args.requests}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "load":
        if not Path(args.clips).is_file():
            raise UsageError(f"--clips {args.clips}: file not found")
        output = writable_path(args.output, "--output")
        bodies = [wav_bytes(w) for w in np.load(args.clips)]
        write_json(run_load(args.url, bodies, args.concurrency, args.api_key), output)
        return 0
    if args.model:
        existing_model(args.model)
    args.output = writable_path(args.output or Path(args.work_dir) / "serve.json", "--output")
    results = benchmark(args)
    write_json(results, args.output)
    for name in ("batched", "one_at_a_time"):
        side = results[name]
        print(f"{name:>14}: p50 {side['p50_ms']:.1f} ms  p99 {side['p99_ms']:.1f} ms  "
              f"{side['throughput_per_s']:.1f} req/s  mean batch {side['mean_batch_size'] or 0:.1f}  "
              f"({side['ok']}/{results['requests']} answered)")
    alone = results["model_alone"]
    print(f"throughput ratio batched / one-at-a-time: {results['throughput_ratio']:.2f}x "
          f"(target >= {TARGET_RATIO:g}x) at concurrency {results['concurrency']}, load average "
          f"{results['load_average_1min_at_start']:.2f} -> {results['machine']['load_average_1min']:.2f} on "
          f"{results['machine']['cpu_count']} CPUs")
    print(f"the model alone: {alone['ms_per_clip_one_at_a_time']:.1f} ms per clip one at a time, "
          f"{alone['ms_per_clip_batched']:.1f} ms in batches of {results['max_batch_size']} ({alone['ratio']:.2f}x)")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
