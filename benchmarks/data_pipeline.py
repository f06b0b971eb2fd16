"""Data pipeline benchmark: hfspeech (decode once, cached, per-epoch crop views) vs the reference recipe
(transformers' run_audio_classification.py: cast_column + set_transform, decoding on every epoch).

    python benchmarks/data_pipeline.py                      # 2,000 clips, 3 epochs, num_proc 1 and 2 (~2 min, 2 cores)
    python benchmarks/data_pipeline.py --num-clips 20000    # the large run

Clips are generated once (0.5-3 s, 8/16/22.05/44.1 kHz, wav/flac/ogg/mp3 as soundfile writes them, four
classes) into an audiofolder. Each side then turns the folder into padded training batches at 16 kHz, epoch
after epoch: decode + resample + random 1 s crop + feature extractor + padding, the same feature extractor
and batch size for both, through a torch DataLoader. num_proc is where each side spends its processes: the
reference decodes in every epoch, so it gets that many DataLoader workers; hfspeech decodes once, in
`prepare_dataset(num_proc=...)`, and reads its epochs in the main process (starting workers every epoch
costs more than its whole per-epoch pass; the recipe's default is no workers too). Epoch 1 counts everything from the folder on (loading the
folder, hfspeech's preparation, into a fresh cache); later epochs count the pass alone. Each side runs in
its own process, so its peak memory is its own. Ratios are hfspeech / reference (higher is better for
clips/s). Results also go to JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _checks import run_script, writable_path  # noqa: E402  (first: no downloads)
from _common import (  # noqa: E402
    MemorySampler, generate_clips, machine, reference_transforms, run_side, write_json,
)

from hfspeech.cli.flags import number_in, positive  # noqa: E402

SAMPLING_RATE = 16000
MAX_LENGTH_SECONDS = 1.0
BATCH_SIZE = 32
TARGETS = {"epoch_2_plus": 3.0, "epoch_1_num_proc_2": 1.5}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints a table; writes JSON "
                                     "(--output): the machine, the settings, both sides and their ratios.")
    parser.add_argument("--num-clips", type=number_in(int, 4, 20000), default=2000,
                        help="generated clips, 4 to 20,000 (at least one per class)")
    parser.add_argument("--epochs", type=number_in(int, 2, 1000), default=3, help="passes over the data per run (>= 2)")
    parser.add_argument("--num-proc", type=positive(int), nargs="+", default=[1, 2], help="process counts to measure")
    parser.add_argument("--work_dir", default="runs/benchmark-data", help="generated clips go here")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process, not one subprocess per run (quick checks; memory not comparable)")
    parser.add_argument("--output", help="JSON results (default: WORK_DIR/data_pipeline_benchmark.json)")
    parser.add_argument("--side", choices=["hfspeech", "reference"], help=argparse.SUPPRESS)  # one measured run
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def feature_extractor():
    from hfspeech.models import CNNAudioFeatureExtractor

    return CNNAudioFeatureExtractor(sampling_rate=SAMPLING_RATE)


def loader(dataset, collate_fn, num_workers: int, seed: int):
    import torch

    return torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, collate_fn=collate_fn,
                                       num_workers=num_workers,
                                       generator=torch.Generator().manual_seed(seed))


def run_epochs(make_loader, epochs: int, start: float) -> list[dict]:
    """Time each pass; the first one from `start` (so that it includes loading and preparation)."""
    timings = []
    for epoch in range(epochs):
        clips = 0
        for batch in make_loader(epoch):
            clips += len(batch["labels"])
        end = time.perf_counter()
        timings.append({"epoch": epoch + 1, "seconds": end - start, "clips": clips})
        start = end
    return timings


def measure_hfspeech(data_dir: str, num_proc: int, epochs: int, cache_dir: str) -> list[dict]:
    from hfspeech.data.labels import encode_labels
    from hfspeech.data.loading import load_audio_dataset
    from hfspeech.data.prepare import prepare_dataset
    from hfspeech.data.transforms import AudioClassificationCollator, attach_transforms

    start = time.perf_counter()
    raw = encode_labels(load_audio_dataset(data_dir=data_dir, cache_dir=cache_dir))
    loaded = time.perf_counter()
    prepared, _ = prepare_dataset(raw, SAMPLING_RATE, num_proc=num_proc)
    stages = {"load_folder_s": loaded - start, "prepare_s": time.perf_counter() - loaded}
    views = attach_transforms(prepared, SAMPLING_RATE, MAX_LENGTH_SECONDS, seed=0)
    collator = AudioClassificationCollator(feature_extractor())
    timings = run_epochs(lambda epoch: loader(views["train"], collator, 0, epoch), epochs, start)
    timings[0].update(stages)  # where epoch 1's time went
    return timings


def measure_reference(data_dir: str, num_proc: int, epochs: int, cache_dir: str) -> list[dict]:
    from transformers import DataCollatorWithPadding

    import datasets

    start = time.perf_counter()
    extractor = feature_extractor()
    dataset = datasets.load_dataset("audiofolder", data_dir=data_dir, drop_labels=False, cache_dir=cache_dir)
    dataset = dataset.cast_column("audio", datasets.Audio(sampling_rate=extractor.sampling_rate))
    train_transforms, _ = reference_transforms(extractor, MAX_LENGTH_SECONDS)
    dataset["train"].set_transform(train_transforms, output_all_columns=False)
    collator = DataCollatorWithPadding(extractor)  # what Trainer uses by default with a feature extractor
    workers = num_proc if num_proc > 1 else 0
    return run_epochs(lambda epoch: loader(dataset["train"], collator, workers, epoch), epochs, start)


def measure_one(args) -> dict:
    """One side, one num_proc, in this process."""
    import datasets

    datasets.disable_progress_bars()
    # Python imports are not data loading: both sides' modules are loaded before any clock starts.
    import hfspeech.data.loading  # noqa: F401
    import hfspeech.data.prepare  # noqa: F401
    import hfspeech.data.transforms  # noqa: F401
    import hfspeech.models

    hfspeech.models.register()  # the baselines, for the Auto classes
    from transformers import DataCollatorWithPadding  # noqa: F401

    measure = measure_hfspeech if args.side == "hfspeech" else measure_reference
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.side}-") as cache_dir, MemorySampler() as memory:
        epochs = measure(args.data_dir, args.num_proc[0], args.epochs, cache_dir)
    return {"side": args.side, "num_proc": args.num_proc[0], "epochs": epochs, **memory.result()}


def summarise(run: dict) -> dict:
    epochs = run["epochs"]
    later = epochs[1:]
    return {"epoch_1_clips_per_s": epochs[0]["clips"] / epochs[0]["seconds"],
            "epoch_2_plus_clips_per_s": sum(e["clips"] for e in later) / sum(e["seconds"] for e in later),
            "peak_rss_mb": run["peak_rss_mb"], "peak_pss_mb": run["peak_pss_mb"],
            "peak_pss_anon_mb": run["peak_pss_anon_mb"]}


def print_table(rows: list[dict]) -> None:
    print(f"\n{'num_proc':>8} {'side':<10}{'epoch 1 clips/s':>16}{'epoch>=2 clips/s':>18}{'peak RSS MB':>13}"
          f"{'all procs MB':>14}{'anon MB':>9}")
    for row in rows:
        for side in ("hfspeech", "reference"):
            s = row[side]
            print(f"{row['num_proc']:>8} {side:<10}{s['epoch_1_clips_per_s']:>16.1f}{s['epoch_2_plus_clips_per_s']:>18.1f}"
                  f"{s['peak_rss_mb']:>13.0f}{s['peak_pss_mb']:>14.0f}{s['peak_pss_anon_mb']:>9.0f}")
        r = row["ratio"]
        print(f"{row['num_proc']:>8} {'ratio':<10}{r['epoch_1']:>15.2f}x{r['epoch_2_plus']:>17.2f}x"
              f"{r['peak_rss']:>12.2f}x{r['peak_pss']:>13.2f}x{r['peak_pss_anon']:>8.2f}x")
    for row in rows:
        first = row["hfspeech"]["epochs"][0]
        print(f"num_proc={row['num_proc']}: hfspeech's epoch 1 ({first['seconds']:.2f} s) = {first['load_folder_s']:.2f} s "
              f"loading the audio folder (listed by hfspeech.data.folders; the reference uses datasets' audiofolder) + "
              f"{first['prepare_s']:.2f} s prepare_dataset + the pass")
    print("peak RSS: largest single process (ru_maxrss); all procs: PSS summed over the process and its workers "
          "(anon: without memory-mapped Arrow pages)")
    print(f"ratio: hfspeech / reference. Targets: epoch>=2 >= {TARGETS['epoch_2_plus']}x, "
          f"epoch 1 with num_proc=2 >= {TARGETS['epoch_1_num_proc_2']}x")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.side:
        print(json.dumps(measure_one(args)))
        return {}
    work_dir = writable_path(args.work_dir, "--work_dir", folder=True)
    output = writable_path(args.output or work_dir / "data_pipeline_benchmark.json", "--output")
    started = time.perf_counter()
    data_dir = generate_clips(work_dir / f"clips-{args.num_clips}", args.num_clips)
    print(f"{args.num_clips} clips in {data_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
    measure = (lambda argv: measure_one(parse_args(argv))) if args.in_process else None
    rows = []
    for num_proc in args.num_proc:
        row = {"num_proc": num_proc}
        for side in ("hfspeech", "reference"):
            run = run_side(__file__, ["--side", side, "--data_dir", str(data_dir), "--num-proc", str(num_proc),
                                      "--epochs", str(args.epochs)], measure)
            row[side] = {**summarise(run), "epochs": run["epochs"]}
            print(f"num_proc={num_proc} {side}: {row[side]['epoch_1_clips_per_s']:.0f} clips/s epoch 1, "
                  f"{row[side]['epoch_2_plus_clips_per_s']:.0f} clips/s later", flush=True)
        h, r = row["hfspeech"], row["reference"]
        row["ratio"] = {"epoch_1": h["epoch_1_clips_per_s"] / r["epoch_1_clips_per_s"],
                        "epoch_2_plus": h["epoch_2_plus_clips_per_s"] / r["epoch_2_plus_clips_per_s"],
                        "peak_rss": h["peak_rss_mb"] / r["peak_rss_mb"],
                        "peak_pss": h["peak_pss_mb"] / r["peak_pss_mb"],
                        "peak_pss_anon": h["peak_pss_anon_mb"] / r["peak_pss_anon_mb"]}
        rows.append(row)
    checks = {"epoch_2_plus_at_least_3x": all(row["ratio"]["epoch_2_plus"] >= TARGETS["epoch_2_plus"] for row in rows)}
    proc2 = [row for row in rows if row["num_proc"] == 2]
    if proc2:
        checks["epoch_1_num_proc_2_at_least_1_5x"] = proc2[0]["ratio"]["epoch_1"] >= TARGETS["epoch_1_num_proc_2"]
    results = {"machine": machine(), "in_process": args.in_process,  # in-process: memory not comparable
               "num_clips": args.num_clips, "epochs": args.epochs, "batch_size": BATCH_SIZE,
               "sampling_rate": SAMPLING_RATE, "max_length_seconds": MAX_LENGTH_SECONDS, "data_dir": str(data_dir),
               "targets": TARGETS, "meets_targets": checks, "results": rows,
               "total_seconds": time.perf_counter() - started}
    print_table(rows)
    output = write_json(results, output)
    print(f"targets met: {checks}; results: {output}")
    return results


if __name__ == "__main__":
    run_script(main)
