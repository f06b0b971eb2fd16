"""The model behind the server: loaded once per process (in the background, so `/health` can say
"loading"), its windows batched across requests, and answers in the Hub's shape.

A request that arrives while the model loads waits for it (within the request timeout) rather than being
refused: with `--workers N` a worker that is still loading may be handed a connection while another one
already answers `/health`. A model that fails to load is logged, counted in the metrics (`on_load_error`) and
stops a one-process server.

A request's audio is decoded from memory as `hfspeech.data.audio.decode_audio` decodes it (the decoder,
downmix, resampler and errors of every other path in hfspeech), held to `--max_seconds` before it is decoded
whole (`upload_audio`), trimmed as the model's training clips were and cut into the windows `hfspeech predict`
cuts (`inference.windows.clip_windows`), all in one of the process's decoding threads (`decode_slots`: its share of
the CPUs, not Python's default pool), and its windows' logits come from the shared
`DynamicBatcher`. Scores, aggregation, top-k and multi-label thresholds are `AudioClassifier`'s own, so the answer
is `predict`'s answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hfspeech.cpu_threads import thread_budget, usable_cpus, user_threads
from hfspeech.data.audio import AudioFileError
from hfspeech.data.media_references import refuse_media_references
from hfspeech.data.samples import stream_not_trimmed_warning
from hfspeech.errors import HfspeechError
from hfspeech.file_owners import access_refusal
from hfspeech.temporary_folder import no_temporary_folder
from hfspeech.inference.backends import WEIGHT_FILES
from hfspeech.inference.classifier import AudioClassifier, Prediction
from hfspeech.inference.outputs import with_every_active_label
from hfspeech.inference.windows import clip_windows, finite_or_none
from hfspeech.models.fingerprint import file_sha256
from hfspeech.models.scores import is_multi_label, scores_from_logits, sigmoid, thresholds_from_config
from hfspeech.serve.batching import DynamicBatcher
from hfspeech.serve.errors import ApiError, audio_error
from hfspeech.serve.payload import Parameters
from hfspeech.serve.upload_audio import decode_upload

logger = logging.getLogger("hfspeech.serve")
startup_log = logging.getLogger("uvicorn.error")  # beside uvicorn's own start-up lines, at its --log_level


def call_in_loop(loop: asyncio.AbstractEventLoop, callback) -> None:
    """`callback` run in the server's event loop, from the loading thread; nothing when that loop has closed
    meanwhile (the app stopped while its model loaded: a test client left, an embedding program stopped it), where
    the thread printed "RuntimeError: Event loop is closed" with a traceback."""
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        if not loop.is_closed():
            raise


class ModelRunner:
    """Loads the classifier in a background thread; `classify(audio_bytes, parameters)` once `ready`."""

    def __init__(self, model: str, backend: Optional[str] = None, trust_remote_code: bool = False,
                 max_batch_size: int = 32, max_wait_ms: float = 5.0, max_seconds: float = 600.0, on_batch=None,
                 device: Optional[str] = None):
        self.model_path, self.backend_name, self.trust_remote_code = model, backend, trust_remote_code
        self.device = device
        self.max_seconds = max_seconds
        self.classifier: Optional[AudioClassifier] = None
        self.model_file: Optional[Path] = None  # the weights or export file that runs (None: from the Hub)
        self.revision: Optional[str] = None  # `model_revision`, hashed once in the loading thread, not per /info
        self.load_error: Optional[str] = None
        self.loaded: Optional[asyncio.Event] = None
        self.on_load_failure = None  # e.g. stop the server (`run_server` does, with one process)
        self.on_load_error = None  # called in the loading thread when it fails (`create_app` counts it)
        self.batcher = DynamicBatcher(self._logits, max_batch_size, max_wait_ms, on_batch)
        self.decoder = ThreadPoolExecutor(decode_slots(), thread_name_prefix="hfspeech-decode")

    def start_loading(self) -> None:
        """From inside the event loop: start the batcher, and the model loading in a thread."""
        self.batcher.start()
        self.loaded = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, args=(loop,), name="hfspeech-load", daemon=True).start()

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            classifier = AudioClassifier.from_pretrained(self.model_path, backend=self.backend_name, device=self.device,
                                                         trust_remote_code=self.trust_remote_code, untrained="error")
            self.model_file = served_file(self.model_path, classifier)
            self.revision = model_revision(self.model_file, classifier.config)
            startup_log.info("serving %s (%s)", self.model_file or self.model_path, classifier.backend.name)
            if (line := stream_not_trimmed_warning(self.model_path, classifier.config)) is not None:
                startup_log.warning("%s", line)  # once: `/classify` trims each upload, `/stream` cannot
            self.classifier = classifier
        except Exception as error:  # logged here; /health answers "error" (without the message)
            # A user's mistake reads as everywhere else (the message names the folder), and so does a path this user
            # may not read (another user's 0700 run: `PermissionError: [Errno 13] ...` was printed); the rest is a bug
            user_error = error if isinstance(error, HfspeechError) else (access_refusal(error)
                                                                         or no_temporary_folder(error))
            self.load_error = str(user_error) if user_error is not None else f"{type(error).__name__}: {error}"
            if self.on_load_error is not None:
                self.on_load_error()
            if self.on_load_failure is not None:
                call_in_loop(loop, self.on_load_failure)
            else:
                logger.error("error: the model did not load: %s", self.load_error)
        call_in_loop(loop, self.loaded.set)

    @property
    def ready(self) -> bool:
        return self.classifier is not None

    async def wait_ready(self) -> AudioClassifier:
        if self.loaded is not None:
            await self.loaded.wait()
        return self.require_ready()

    def require_ready(self) -> AudioClassifier:
        if self.classifier is None:
            message = "model failed to load" if self.load_error else "model is loading"
            raise ApiError(503, "not_ready", message)
        return self.classifier

    def _logits(self, windows: list[np.ndarray]) -> np.ndarray:
        return self.classifier.logits(windows)

    def decode(self, audio: bytes) -> np.ndarray:
        """Mono float32 at the model's rate, or a 4xx naming the problem (empty, undecodable, NaN, too long)."""
        classifier = self.require_ready()
        if not audio:
            raise ApiError(400, "empty_audio", "upload: file is empty (0 bytes)")
        try:  # measured before (or while) decoding: 180 KB of FLAC can hold hours
            refuse_media_references(audio, "upload")  # before any of the decoders: ffmpeg opens what it names
            waveform = decode_upload(audio, classifier.sampling_rate, self.max_seconds)
        except AudioFileError as error:
            raise audio_error(error) from None
        seconds = len(waveform) / classifier.sampling_rate
        if seconds > self.max_seconds:
            raise ApiError(413, "audio_too_long", f"upload: {seconds:.1f} s of audio is over the limit of "
                           f"{self.max_seconds:g} s")
        return waveform

    def windows(self, audio: bytes) -> list[tuple[int, np.ndarray]]:
        """`(start, window)` pairs of an upload (`decode`), trimmed as the model's training clips were: run in a
        thread, off the event loop (`data.samples.TrimMeter` trims a 600-s upload in ~0.7 s on two loaded cores)."""
        classifier = self.require_ready()
        return clip_windows(self.decode(audio), classifier.config, *classifier.window_sizes())

    async def decoded_windows(self, audio: bytes) -> list[tuple[int, np.ndarray]]:
        """`windows` in the decoding threads (`self.decoder`): at most `decode_slots()` uploads of this process are
        decoded at once, the others wait their turn undecoded. `asyncio.to_thread`'s pool ran min(32, host cores +
        4) at once (20 on a 16-core node in a 2-CPU pod), each holding its decoded audio. A request cancelled (its
        client gone) while it waits is dropped from the queue; one being decoded keeps its thread till it ends."""
        call = functools.partial(contextvars.copy_context().run, self.windows, audio)  # as `to_thread` calls it
        return await asyncio.get_running_loop().run_in_executor(self.decoder, call)

    async def classify(self, audio: bytes, parameters: Parameters):
        """The Hub's answer (a list of {label, score}), or with `timeline` an object that adds the windows."""
        classifier = await self.wait_ready()
        refuse_votes_off_scale(classifier.config, parameters)  # before the upload is decoded
        starts, pieces = zip(*await self.decoded_windows(audio))
        logits = np.stack(await self.batcher.submit(pieces))
        prediction = self.prediction(logits, starts, pieces, parameters)
        answer = self.hub_answer(prediction, parameters.function_to_apply)
        if not parameters.timeline:
            return answer
        return {"predictions": answer, "num_windows": prediction.num_windows, "aggregate": prediction.aggregate,
                "active_labels": prediction.active_labels,
                "labels": [classifier.id2label[i] for i in range(len(classifier.id2label))],
                "windows": [w.to_dict(classifier.id2label, parameters.top_k) for w in prediction.windows]}

    def prediction(self, logits: np.ndarray, starts: Sequence[int], pieces: Sequence[np.ndarray],
                   parameters: Parameters) -> Prediction:
        """The top-k labels and every active label ranked below them (`with_every_active_label`). Scores other
        than a multi-label model's sigmoids (`function_to_apply` softmax or none) judge no label active, as
        the pipeline does: the thresholds are on the sigmoid scale (a softmax 0.332 read as inactive a label
        active at 0.623)."""
        classifier = self.classifier
        scores = apply_function(logits, parameters.function_to_apply, classifier.config)
        windows = [classifier.window_result(i, start, len(piece), row)
                   for i, (start, piece, row) in enumerate(zip(starts, pieces, scores))]
        judged = judges_active(classifier.config, parameters.function_to_apply)
        windows = windows if judged else [replace(window, active_labels=[]) for window in windows]
        ranked = classifier.prediction_from_windows("upload", windows, len(classifier.id2label), parameters.aggregate)
        ranked = ranked if judged else replace(ranked, active_labels=[])
        return with_every_active_label(ranked, parameters.top_k)

    def hub_answer(self, prediction: Prediction, function_to_apply: Optional[str] = None) -> list[dict]:
        """[{label, score}] best first; a multi-label model's sigmoid scores add each label's threshold and whether
        it is active (as the pipeline's do)."""
        config = self.classifier.config
        answer = [{"label": label, "score": finite_or_none(score)}  # NaN: null, not Starlette's 500
                  for label, score in zip(prediction.labels, prediction.scores)]
        if judges_active(config, function_to_apply):
            thresholds = thresholds_from_config(config)  # float64, as the config holds them
            label2id = {label: i for i, label in self.classifier.id2label.items()}
            for entry in answer:
                entry["threshold"] = float(thresholds[label2id[entry["label"]]])
                entry["active"] = entry["label"] in prediction.active_labels
        return answer

    def info(self) -> dict:
        classifier = self.require_ready()
        config = classifier.config
        return {"labels": [classifier.id2label[i] for i in range(len(classifier.id2label))],
                "sampling_rate": classifier.sampling_rate, "backend": classifier.backend.name,
                "model_type": getattr(config, "model_type", None), "problem_type": getattr(config, "problem_type", None)
                or "single_label_classification", "window_seconds": classifier.window_seconds,
                "model_file": shown_name(self.model_file, self.model_path),
                "revision": self.revision,
                "max_batch_size": self.batcher.max_batch_size, "max_wait_ms": self.batcher.max_wait * 1000,
                "max_seconds": self.max_seconds}


def decode_slots() -> int:
    """How many uploads a server process decodes at once: its share of the CPUs as `cpu_threads` works it out
    (the container's quota or the CPU affinity, a worker's share of them, or the user's OMP_NUM_THREADS), at least
    2 so that one long upload does not hold every short clip behind it. More at once decode no faster on those
    CPUs, and each holds its decoded audio (up to ~2x `--max_seconds` of mono float32 at the model's rate)."""
    budget = thread_budget()
    return max(2, budget[0] if budget is not None else user_threads() or usable_cpus())


def judges_active(config, function: Optional[str]) -> bool:
    """Whether labels are judged active: a multi-label model's own sigmoid scores, which its thresholds are on."""
    return is_multi_label(config) and function in (None, "sigmoid")


def refuse_votes_off_scale(config, parameters: Parameters) -> None:
    """A 400 for `aggregate=vote` with `function_to_apply` softmax or none on a multi-label model: its windows vote
    for the labels at or above their thresholds, which are on the sigmoid scale (thresholds of 0.25 read one
    window's softmax as 1 label and its logits as 4, where its sigmoids had 6). Votes counted on the sigmoids
    anyway would answer shares on no function's scale and make the parameter a silent no-op; a single-label
    model's vote is its top label, the same on every scale, so it is answered."""
    off_scale = is_multi_label(config) and not judges_active(config, parameters.function_to_apply)
    if parameters.aggregate == "vote" and off_scale:
        raise ApiError(400, "bad_parameters", f"aggregate=vote with function_to_apply="
                       f"{parameters.function_to_apply}: a multi-label model's windows vote at its thresholds, "
                       "which are on the sigmoid scale; leave function_to_apply out (or sigmoid), or aggregate "
                       "mean or max")


def apply_function(logits: np.ndarray, function: Optional[str], config) -> np.ndarray:
    """The transformers pipeline's `function_to_apply`; None: the model's own (`scores_from_logits`)."""
    if function is None:
        return scores_from_logits(logits, config)
    if function == "softmax":
        return scores_from_logits(logits, None)
    if function == "sigmoid":
        return sigmoid(logits).astype(np.float32)
    return np.asarray(logits, dtype=np.float32)


def served_file(model: str, classifier: AudioClassifier) -> Optional[Path]:
    """The file the model runs from: the export backend's own (a folder may hold model.onnx and
    model_quantized.onnx, and a training run its TorchScript twin), else the folder's weights file."""
    path = getattr(classifier.backend, "path", None)
    if path is not None:
        return Path(path)
    return next((Path(model) / name for name in WEIGHT_FILES if (Path(model) / name).is_file()), None)


def shown_name(model_file: Optional[Path], model: str) -> Optional[str]:
    """The served file relative to the folder given to `hfspeech serve` (`model_quantized.onnx`,
    `torchscript/model.torchscript.pt`): which file, without telling a client where it lives."""
    if model_file is None:
        return None
    base = Path(model) if Path(model).is_dir() else Path(model).parent
    try:
        return model_file.relative_to(base).as_posix()
    except ValueError:
        return model_file.name


def model_revision(model_file: Optional[Path], config) -> Optional[str]:
    """The Hub commit a model came from, else the first 12 hex digits of the served file's SHA-256: either
    way it changes exactly when the model does."""
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return commit
    if model_file is None or not model_file.is_file():
        return None
    return f"sha256:{file_sha256(model_file)[:12]}"
