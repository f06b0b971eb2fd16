"""The step-time ratio of `benchmarks/pretrained.py`: a full Whisper training step on 1-s clips with the encoder
cut to the clip, against the same step padded to Whisper's 30-s window, in the same process, same clips."""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks._pretrained_runs import FSDD


def step_seconds(checkpoint: str, window_seconds: int, clips: list[np.ndarray], steps: int) -> float:
    """Mean wall time of a full training step (forward, backward, AdamW) on one batch of `clips`."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from hfspeech.models.inputs import extract_features
    from hfspeech.models.whisper import prepare_whisper_classifier

    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_pretrained(checkpoint, num_labels=10)
    extractor, _ = prepare_whisper_classifier(model, AutoFeatureExtractor.from_pretrained(checkpoint), window_seconds)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = dict(extract_features(extractor, clips))
    labels = torch.arange(len(clips)) % 10
    model.train()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return float(np.mean(times[1:]))


def step_time_rows(batch_size: int, steps: int):
    """`(results key, row)` of the cut-vs-padded step time of whisper-tiny.en on `batch_size` of george's clips,
    for one thread and for torch's default threads."""
    import soundfile as sf
    import soxr

    from hfspeech.models.whisper.pretrained import resolve_pretrained

    clips = []
    for path in sorted(FSDD.glob("*_george_1*.wav"))[:batch_size]:
        audio, rate = sf.read(path, dtype="float32")
        clips.append(soxr.resample(audio, rate, 16000))
    import torch

    checkpoint = resolve_pretrained("whisper-tiny.en")
    # One thread too: on a shared, oversubscribed machine the 2-thread ratio mostly measures thread contention.
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        cut = step_seconds(checkpoint, 1, clips, steps)
        padded = step_seconds(checkpoint, 30, clips, steps)
        yield (f"step_time/whisper-tiny.en/threads-{threads}",
               {"batch_size": len(clips), "threads": threads, "cut_1s_step_s": round(cut, 3),
                "padded_30s_step_s": round(padded, 3), "speedup": round(padded / cut, 1), "load": os.getloadavg()[0]})
