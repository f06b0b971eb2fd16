"""Many files and long files at full speed: decoding in a background thread, windows batched across files.

`score_files(classifier, paths)` yields each file's `FileScores` (or its `AudioFileError`) in the order of
`paths`, as `score_file` would give them one by one (`predict_files`: the same as `Prediction`s), but:

* a thread decodes and cuts windows ahead of the model (`prefetched`): libsndfile, soxr, onnxruntime and
  torch release the GIL, so reading the next chunk overlaps with classifying this one;
* the model sees full batches: windows from the end of one file and the start of the next share a batch,
  so a folder of one-second clips runs in batches of 16, not of one;
* memory stays bounded: the thread runs at most `PREFETCH_ITEMS` chunks ahead, and a file's windows are
  scored as they arrive (a ten-hour file holds one chunk, one batch and its window scores);
* with `progress=True`, a tqdm bar on stderr counts audio seconds and shows the real-time factor.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np

from hfspeech.data.audio import DEFAULT_CHUNK_SECONDS, AudioFileError, iter_audio_chunks
from hfspeech.data.samples import TrimMeter, trim_top_db_of
from hfspeech.features.waveform import ZERO_LENGTH
from hfspeech.inference.windows import WindowResult, WindowSlicer

PREFETCH_ITEMS = 4
T = TypeVar("T")
_END = object()


def prefetched(items: Iterable[T], depth: int = PREFETCH_ITEMS) -> Iterator[T]:
    """`items`, produced by a background thread at most `depth` ahead; its exceptions are raised here, in
    order. Stopping early (closing the generator) stops the thread at its next item."""
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((item, None))
            slots.put((_END, None))
        except BaseException as error:  # handed to the consumer, raised where it reads
            slots.put((_END, error))

    thread = threading.Thread(target=produce, name="hfspeech-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.01)


@dataclass
class _Piece:
    """What the decoding thread hands over: a file's windows from one chunk, or its end, or its error."""

    file: int
    windows: list[tuple[int, np.ndarray]]
    seconds: float = 0.0
    last: bool = False
    error: Optional[AudioFileError] = None


@dataclass
class FileChunk:
    """A chunk of a file's audio as it is classified: `offset`, where the kept audio starts in the file (the trim's
    start: window times stay times in the file), and `skipped`, samples trimmed away that this chunk accounts for
    (the progress bar counts them, so it ends at the file's length)."""

    samples: np.ndarray
    offset: int = 0
    skipped: int = 0


def file_chunks(path: str, rate: int, chunk_seconds: int, config=None) -> Iterator[FileChunk]:
    """The file's chunks (`iter_audio_chunks`), decoded as they are asked for (in `prefetched`'s thread). For a
    model trained on trimmed clips (`config`'s `data.samples.trim_top_db_of`), the file is read twice in bounded
    memory: once to measure the trim (`data.samples.TrimMeter`, the span `trim_span` gives the whole file), then
    again from its start to the span's end, handing on only the kept samples."""
    top_db = trim_top_db_of(config)
    if top_db is None:
        yield from (FileChunk(chunk) for chunk in iter_audio_chunks(path, rate, chunk_seconds))
        return
    meter = TrimMeter()
    for chunk in iter_audio_chunks(path, rate, chunk_seconds):  # an empty file raises here
        meter.push(chunk)
    start, end = meter.span(top_db)
    position, skipped = 0, start
    for chunk in iter_audio_chunks(path, rate, chunk_seconds):
        kept = chunk[max(0, start - position) : max(0, end - position)]
        position += chunk.size
        if kept.size:
            yield FileChunk(kept, start, skipped)
            skipped = 0
        if position >= end:
            break
    if position < end:  # rewritten between the reads: scored on nothing, it gave all-zero scores without a word
        raise AudioFileError(path, "changed while it was read (shorter the second time); classify it again")
    yield FileChunk(np.zeros(0, np.float32), start, meter.samples - end)


def shifted(windows: list[tuple[int, np.ndarray]], offset: int) -> list[tuple[int, np.ndarray]]:
    """`(start, window)` pairs with `offset` added to the starts (`FileChunk.offset`)."""
    return [(offset + start, window) for start, window in windows] if offset else windows


def _pieces(paths: Sequence[str], rate: int, window: int, hop: int, chunk_seconds: int,
            config=None) -> Iterator[_Piece]:
    for index, path in enumerate(paths):
        slicer = WindowSlicer(window, hop)
        try:
            offset = 0
            for chunk in file_chunks(path, rate, chunk_seconds, config):
                offset, seconds = chunk.offset, (chunk.samples.size + chunk.skipped) / rate
                yield _Piece(index, shifted(slicer.push(chunk.samples), offset), seconds)
            yield _Piece(index, shifted(slicer.finish(), offset), last=True)
        except AudioFileError as error:
            yield _Piece(index, [], last=True, error=error)


@dataclass
class _Batcher:
    """Windows waiting for a full batch, and each file's scored windows until the file is complete."""

    classifier: object
    pending: list[tuple[int, int, np.ndarray]] = field(default_factory=list)  # (file, start, waveform)
    scored: dict[int, list[WindowResult]] = field(default_factory=dict)

    def add(self, piece: _Piece) -> None:
        self.scored.setdefault(piece.file, [])
        self.pending += [(piece.file, start, waveform) for start, waveform in piece.windows]

    def drop(self, file: int) -> None:
        self.pending = [entry for entry in self.pending if entry[0] != file]
        self.scored.pop(file, None)

    def score(self, everything: bool = False) -> None:
        size = self.classifier.batch_size
        while self.pending and (everything or len(self.pending) >= size):
            batch, self.pending = self.pending[:size], self.pending[size:]
            rows = self.classifier.predict_proba([waveform for _, _, waveform in batch])
            for (file, start, waveform), row in zip(batch, rows):
                results = self.scored.setdefault(file, [])
                results.append(self.classifier.window_result(len(results), start, len(waveform), row))

    def waiting_on(self, file: int) -> bool:
        return any(entry[0] == file for entry in self.pending[:1])  # pending is in file order


def audio_seconds(paths: Sequence[str]) -> Optional[float]:
    """Total duration of the files from their headers (for the progress bar), None if one cannot be read."""
    import soundfile as sf

    try:
        return float(sum(sf.info(str(path)).duration for path in paths))
    except Exception:
        return None


def predict_files(classifier, paths: Sequence[str], top_k: int = 5, window_seconds: Optional[float] = None,
                  hop_seconds: Optional[float] = None, aggregate: str = "mean",
                  chunk_seconds: int = DEFAULT_CHUNK_SECONDS, progress: bool = False):
    """`(path, Prediction or AudioFileError)` for every path, in order: `score_files` plus the top-k labels."""
    for path, result in score_files(classifier, paths, window_seconds, hop_seconds, aggregate, chunk_seconds, progress):
        yield path, result if isinstance(result, AudioFileError) else classifier.prediction(result, top_k)


def score_files(classifier, paths: Sequence[str], window_seconds: Optional[float] = None,
                hop_seconds: Optional[float] = None, aggregate: str = "mean",
                chunk_seconds: int = DEFAULT_CHUNK_SECONDS, progress: bool = False):
    """`(path, FileScores or AudioFileError)` for every path, in order; see the module docstring. A file that gave
    no window to score is an `AudioFileError`, never a `FileScores` (or `Prediction`) of nothing."""
    from hfspeech.inference.classifier import AGGREGATIONS

    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
    paths = [str(path) for path in paths]
    window, hop = classifier.window_sizes(window_seconds, hop_seconds)
    pieces = prefetched(_pieces(paths, classifier.sampling_rate, window, hop, chunk_seconds,
                                getattr(classifier, "config", None)))
    batcher, finished, next_file, ended = _Batcher(classifier), {}, 0, 0
    bar = _progress_bar(paths) if progress else None
    try:
        for piece in pieces:
            if piece.error is not None:
                batcher.drop(piece.file)
            else:
                batcher.add(piece)
            if piece.last:
                finished[piece.file] = piece.error
                ended += 1
            batcher.score(everything=ended == len(paths))
            if bar is not None:
                _advance(bar, piece.seconds)
            while next_file in finished and not batcher.waiting_on(next_file):
                error, windows = finished.pop(next_file), batcher.scored.pop(next_file, [])
                if error is None and not windows:  # never scores of nothing: a file too short once resampled
                    error = AudioFileError(paths[next_file], ZERO_LENGTH)  # printed every label at 0.000
                yield paths[next_file], error if error is not None else classifier.file_scores(
                    paths[next_file], windows, aggregate)
                next_file += 1
    finally:
        pieces.close()
        if bar is not None:
            bar.close()


def _progress_bar(paths: Sequence[str]):
    from tqdm.auto import tqdm

    total = audio_seconds(paths)
    bar = tqdm(total=total, unit="s", desc="audio", file=sys.stderr, dynamic_ncols=True, bar_format=(
        "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]" if total
        else "{desc}: {n:.0f} s [{elapsed}{postfix}]"))
    bar.started = time.perf_counter()
    return bar


def _advance(bar, seconds: float) -> None:
    """The total grows to what was read when the headers' sum falls short: the files' seconds added up one by one
    differ from it in the last bit (3.6985000000000006 against 3.6985 for 8 FSDD clips), and tqdm printed
    "TqdmWarning: clamping frac to range [0, 1]" and a remaining time of "-00:00" at the end of the bar."""
    if bar.total is not None and bar.n + seconds > bar.total:
        bar.total = bar.n + seconds
    bar.update(seconds)
    elapsed = time.perf_counter() - bar.started
    if elapsed > 0:
        bar.set_postfix_str(f"{bar.n / elapsed:.0f}x real time", refresh=False)
