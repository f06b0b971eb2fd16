"""Memory benchmark: peak memory of hfspeech's data preparation for 1,000 vs 20,000 clips.

    python benchmarks/memory.py                                # 1k vs 20k short clips (~4 min, 2 cores)
    python benchmarks/memory.py --sizes 1000 20000 --min-seconds 0.5 --max-seconds 3

Preparation decodes every clip once and writes it to Arrow on disk, a batch at a time, so its memory must
not grow with the number of clips: the target is a peak below 1.5x from 1k to 20k clips. Each size runs the
same path as training (load the folder, encode labels, make splits, `prepare_dataset`) in its own process,
into a fresh cache. Clips are short (0.2-0.5 s by default) to keep the run to minutes; the length of the clips
changes the size of the Arrow files, not what is held in memory. Results also go to JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hfspeech.errors import UsageError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _checks import run_script, writable_path  # noqa: E402  (first: no downloads)
from _common import MemorySampler, generate_clips, machine, run_side, write_json  # noqa: E402

from hfspeech.cli.flags import positive  # noqa: E402

SAMPLING_RATE = 16000
TARGET_GROWTH = 1.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints a table; writes JSON "
                                     "(--output): the machine, the settings, both sizes and the growth.")
    parser.add_argument("--sizes", type=positive(int), nargs=2, default=[1000, 20000], metavar=("SMALL", "LARGE"),
                        help="clip counts to compare, the smaller first (at least 10)")
    parser.add_argument("--min-seconds", type=positive(float), default=0.2)
    parser.add_argument("--max-seconds", type=positive(float), default=0.5)
    parser.add_argument("--num-proc", type=positive(int), default=1, help="processes for prepare_dataset")
    parser.add_argument("--work_dir", default="runs/benchmark-memory", help="generated clips go here")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process, not one subprocess per run (quick checks; memory not comparable)")
    parser.add_argument("--output", help="JSON results (default: WORK_DIR/memory_benchmark.json)")
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)  # set for the measured subprocess
    return parser.parse_args(argv)


def measure_one(data_dir: str, num_proc: int) -> dict:
    import datasets

    from hfspeech.data.labels import encode_labels
    from hfspeech.data.loading import load_audio_dataset
    from hfspeech.data.prepare import prepare_dataset
    from hfspeech.data.splits import make_splits

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as cache_dir, MemorySampler() as memory:
        start = time.perf_counter()
        raw = make_splits(encode_labels(load_audio_dataset(data_dir=data_dir, cache_dir=cache_dir)), 0.1, 0.1, 0)
        prepared, report = prepare_dataset(raw, SAMPLING_RATE, num_proc=num_proc)
        seconds = time.perf_counter() - start
        audio_mb = sum(split.data.nbytes for split in prepared.values()) / 1e6
    return {"clips": sum(report.kept.values()), "seconds": seconds, "arrow_mb": audio_mb, **memory.result()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.data_dir:
        print(json.dumps(measure_one(args.data_dir, args.num_proc)))
        return {}
    if not 10 <= args.sizes[0] < args.sizes[1]:  # the other way round, the growth would be below 1: "met"
        raise UsageError(f"--sizes {args.sizes[0]} {args.sizes[1]}: give the smaller count first, at least 10 clips")
    if args.min_seconds > args.max_seconds:
        raise UsageError(f"--min-seconds {args.min_seconds}: above --max-seconds {args.max_seconds}")
    output = writable_path(args.output or Path(args.work_dir) / "memory_benchmark.json", "--output")
    writable_path(args.work_dir, "--work_dir", folder=True)
    started = time.perf_counter()
    measure = (lambda argv: measure_one(argv[1], int(argv[3]))) if args.in_process else None
    runs = []
    for size in args.sizes:
        data_dir = generate_clips(Path(args.work_dir) / f"clips-{size}", size, args.min_seconds, args.max_seconds)
        run = run_side(__file__, ["--data_dir", str(data_dir), "--num-proc", str(args.num_proc)], measure)
        runs.append({"num_clips": size, **run})
        print(f"{size} clips: prepared in {run['seconds']:.0f} s, {run['arrow_mb']:.0f} MB of audio in Arrow, "
              f"peak RSS {run['peak_rss_mb']:.0f} MB", flush=True)
    small, large = runs
    growth = {key: large[key] / small[key] for key in ("arrow_mb", "peak_rss_mb", "peak_pss_mb", "peak_pss_anon_mb")}
    print(f"\n{'clips':>8}{'prepare s':>11}{'Arrow MB':>10}{'peak RSS MB':>13}{'PSS MB':>9}{'anon MB':>9}")
    for run in runs:
        print(f"{run['num_clips']:>8}{run['seconds']:>11.1f}{run['arrow_mb']:>10.0f}{run['peak_rss_mb']:>13.0f}"
              f"{run['peak_pss_mb']:>9.0f}{run['peak_pss_anon_mb']:>9.0f}")
    print(f"{'growth':>8}{'':>11}{growth['arrow_mb']:>9.1f}x{growth['peak_rss_mb']:>12.2f}x"
          f"{growth['peak_pss_mb']:>8.2f}x{growth['peak_pss_anon_mb']:>8.2f}x")
    meets = growth["peak_rss_mb"] < TARGET_GROWTH
    print(f"peak RSS growth {growth['peak_rss_mb']:.2f}x for {large['num_clips'] / small['num_clips']:.0f}x the clips "
          f"(target < {TARGET_GROWTH}x): {'met' if meets else 'NOT met'}")
    results = {"machine": machine(), "in_process": args.in_process, "sizes": args.sizes,
               "sampling_rate": SAMPLING_RATE, "clip_seconds": [args.min_seconds, args.max_seconds],
               "num_proc": args.num_proc, "runs": runs, "growth": growth, "target_growth": TARGET_GROWTH,
               "meets_target": meets, "total_seconds": time.perf_counter() - started}
    output = write_json(results, output)
    print(f"results: {output}")
    return results


if __name__ == "__main__":
    run_script(main)
