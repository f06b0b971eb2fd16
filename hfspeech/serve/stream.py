"""Live audio: raw PCM in, label events out, as `hfspeech stream` does on stdin.

`WebSocket /stream?format=s16le&rate=16000&channels=1&min_windows=3`: binary messages carry PCM (any
sizes; a partial frame waits for the rest), each window's label events come back as JSON text messages
the moment its window completes (`label` when an event fires, `ended` with its offset when it is over, as
`hfspeech stream` prints them), and a text message `end` (or closing) flushes the last window and answers
the counts (`{"event": "end", ...}`; with `ignored_bytes` and a `warning` when the stream ended part-way
through a frame). `POST /stream` takes the same PCM as a (chunked) body and answers the
events as JSON lines once the body ends. The stream's windows run on the model thread, between batches.
A stream that starts with a WAV header (`curl -T take.wav`) is read by its header (format, rate, channels),
as `hfspeech stream` reads a piped WAV; it used to be read as raw PCM at the query's rate: the header
became samples and an 8 kHz file ran at twice its speed, every event wrong and no error. One that starts as
FLAC, Ogg, MP3, MP4 ... is refused (it was read as PCM: noise).

A stream is refused as a request is (`{"error", "kind"}`; over the WebSocket with `"event": "error"` and
close code 1008): bad query parameters, audio the stream cannot read (NaN samples), a text message other
than `end`, and no audio for `--request_timeout` s. `POST /stream` is also held to `--max_seconds` of audio
(its answer is kept until the body ends); a WebSocket stream is not: it answers as it goes and holds one
window of audio, so a microphone may stream to it for hours.
"""

from __future__ import annotations

import asyncio
import json
import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from hfspeech.errors import HfspeechError
from hfspeech.inference.sources import PcmDecoder, PcmFormat, live_format
from hfspeech.inference.streaming import StreamingClassifier
from hfspeech.serve.errors import ApiError
from hfspeech.serve.payload import flag_parameter, iter_body, refuse_unknown
from hfspeech.serve.runner import ModelRunner


class LiveStream:
    """One stream's decoder and classifier, each message held to `max_seconds` of audio (None: no limit) and,
    with `limit_whole_stream`, the whole stream too; `feed` and `finish` run on the model thread and answer
    the messages to send. The stream's own errors become `ApiError`s: they used to escape the handler (a
    WebSocket cut without a close frame, a POST answered 500, a traceback)."""

    def __init__(self, decode: PcmDecoder, streamer: StreamingClassifier, windows: bool, max_seconds: float | None,
                 restart=None, limit_whole_stream: bool = True):
        self.decode, self.streamer, self.windows = decode, streamer, windows
        self.seconds = 0.0  # of input audio so far
        # The whole stream: POST /stream keeps its answer until the body ends; a WebSocket answers as it
        # goes and holds one window, so it is not limited in total (a microphone may stream for hours).
        self.max_stream_seconds = max_seconds if limit_whole_stream else None
        # One message is run in one go on the model thread all requests share, even where the stream has no
        # limit: 10 KB at `rate=1` held 5000 s of audio (1.4 GB at 16 kHz when run whole, before the slices
        # of `_slice_bytes`), and a minute of the model's time.
        self.max_message_seconds = max_seconds
        self.restart = restart  # input rate -> a new StreamingClassifier, for a WAV header's rate
        self.head: bytes | None = b"" if restart else None  # the first bytes, until they tell whether a WAV
        # header opens the stream (None: raw PCM from here on)

    def feed(self, data: bytes) -> list[dict]:
        if self.head is not None:
            data = self._past_wav_header(data)
            if not data:
                return []
        pcm = self.decode.pcm
        seconds = (len(self.decode.pending) + len(data)) // pcm.frame_bytes / pcm.rate  # before decoding any
        self.seconds += seconds
        if self.max_stream_seconds is not None and self.seconds > self.max_stream_seconds:
            raise ApiError(413, "audio_too_long", f"stream: over the limit of {self.max_stream_seconds:g} s of audio")
        if self.max_message_seconds is not None and seconds > self.max_message_seconds:
            raise ApiError(413, "audio_too_long", f"stream: one message holds {seconds:.0f} s "
                           f"of audio, over the limit of {self.max_message_seconds:g} s; send it in smaller messages")
        step, view, results = self._slice_bytes(), memoryview(data), []
        for start in range(0, len(data), step):
            results += self._classify(self.decode(view[start : start + step]))
        return results

    def _slice_bytes(self) -> int:
        """How much of a message is decoded and classified at a time: the audio in which one model batch of
        windows completes (`classifier.batch_size`; fewer where they are long: about `WINDOW_SAMPLES_PER_SLICE`
        samples of windows, at least one; whole frames). A message was decoded, resampled, cut into windows
        and run whole: one 14 MiB message (458 s at 16 kHz, 10-s windows) raised the server's peak memory by
        193 MB (69 MB in slices). The decoder, resampler and window ring carry on across slices: the same
        windows and events (scores to float rounding, as the batches differ). Full batches: a call costs the
        model about the same for 1 or 16 windows (measured: 0.29 s and 0.48 s for 10-s windows of a small CNN)."""
        most = max(1, WINDOW_SAMPLES_PER_SLICE // self.streamer.window)
        windows = min(self.streamer.classifier.batch_size, most)
        seconds = windows * self.streamer.hop / self.streamer.rate
        return max(1, int(seconds * self.decode.pcm.rate)) * self.decode.pcm.frame_bytes

    def _classify(self, chunk) -> list[dict]:
        try:
            return messages(self.streamer.feed(chunk), self.streamer.id2label, self.windows)
        except (HfspeechError, ValueError) as error:  # NaN samples: the stream cannot go on
            kind = "non_finite_audio" if "NaN" in str(error) else "bad_audio"
            raise ApiError(400, kind, f"stream: {error}") from None

    def finish(self) -> list[dict]:
        """The last windows, then the counts; bytes short of a whole frame at the end (not a sample: nothing to
        pad and classify) are named in the counts, as `hfspeech stream` warns of them. They used to vanish,
        yet they are the sign of a wrong `format` or `channels`."""
        # bytes still held: fewer than 8 (raw PCM after all), or a WAV header cut short (refused)
        held = self._past_wav_header(b"", ended=True) if self.head else b""
        results = self.feed(held) if held else []
        results += messages(self.streamer.finish(), self.streamer.id2label, self.windows)
        results += [event.to_dict() for event in self.streamer.ended_at_finish]  # events open when the audio ended
        end, pending, pcm = self.streamer.stats.to_dict(), len(self.decode.pending), self.decode.pcm
        if pending:
            end.update(ignored_bytes=pending, warning=f"stream ended with {pending} bytes, less than a frame of "
                       f"{pcm.frame_bytes} ({pcm.sample_format}, {pcm.channels} channels): ignored")
        return results + [end]

    def _past_wav_header(self, data: bytes, ended: bool = False) -> bytes:
        """The bytes after a WAV header, whose format then replaces the query's (the header is read whole
        first: nothing is returned until then), or all the bytes held so far when the stream is raw PCM.
        `ended` (from `finish`): no more bytes come, so what is held is decided now (`live_format`)."""
        self.head += data
        try:
            header = live_format(self.head, "stream", ended, "{kind} audio, not raw PCM or WAV; POST / classifies a "
                                 "finished file of any format")
        except ValueError as error:  # encoded audio, not WAVE, cut short, or samples neither 16-bit PCM nor float
            raise ApiError(400, "bad_audio", str(error)) from None
        if header is None:
            if len(self.head) > MAX_WAV_HEADER_BYTES:
                raise ApiError(400, "bad_audio", f"stream: no WAV data chunk in its first {MAX_WAV_HEADER_BYTES} bytes")
            return b""
        pcm, offset = header
        if pcm is None:  # raw PCM
            data, self.head = self.head, None
            return data
        try:
            self.decode, self.streamer = PcmDecoder(pcm), self.restart(pcm.rate)
        except ValueError as error:  # a rate or channel count out of range
            raise ApiError(400, "bad_audio", f"stream: WAV header: {error}") from None
        data, self.head = self.head[offset:], None
        return data


WINDOW_SAMPLES_PER_SLICE = 1 << 22  # of windows cut from one slice of a message (16 MB as float32; `_slice_bytes`)
MIN_HOP_SECONDS = 0.02  # 50 windows per second of audio; `hfspeech stream` on one's own machine has no floor
MAX_WAV_HEADER_BYTES = 1 << 20  # a header with metadata chunks; past this the stream is not a WAV worth waiting for
STREAM_PARAMETERS = ("format", "rate", "channels", "window_seconds", "hop_seconds", "threshold", "min_windows", "vad",
                     "windows", "api_key")  # api_key: a browser's WebSocket cannot send headers


async def open_stream(runner: ModelRunner, query, limit_whole_stream: bool = True) -> LiveStream:
    """The stream the query string asks for, or 400 naming the parameter at fault; `limit_whole_stream`: the
    stream as a whole is held to `--max_seconds` (POST /stream), not only each message (a WebSocket)."""
    classifier = await runner.wait_ready()
    refuse_unknown(query, STREAM_PARAMETERS)  # `min_window=3` used to be ignored without a word
    threshold = _number(query, "threshold", float, 0.5)  # in [0, 1]: StreamingClassifier's check, a 400 below
    window = _number(query, "window_seconds", float, None)
    if window is not None and window > runner.max_seconds:  # its ring buffer is allocated up front
        raise ApiError(400, "bad_parameters", f"window_seconds must be at most the server's limit of "
                       f"{runner.max_seconds:g} s, got {window:g}")
    hop, min_windows, vad = _number(query, "hop_seconds", float, None), _number(query, "min_windows", int, 3), \
        query.get("vad", "none")
    if hop is not None and 0 < hop < MIN_HOP_SECONDS:  # one model call per hop: 5 s at 0.1 ms held it > 10 min
        raise ApiError(400, "bad_parameters", f"hop_seconds must be at least {MIN_HOP_SECONDS:g} on this server "
                       f"(a window every hop), got {hop:g}")

    def make_streamer(input_rate: int) -> StreamingClassifier:
        return StreamingClassifier(classifier, window, hop, input_rate=input_rate, threshold=threshold,
                                   min_windows=min_windows, vad=vad, offsets=True,  # `ended` events, as the CLI's
                                   source="upload")  # its errors: "upload at 15.0 s: ..."

    try:
        pcm = PcmFormat(query.get("format", "s16le"), _number(query, "rate", int, classifier.sampling_rate),
                        _number(query, "channels", int, 1))
        streamer = make_streamer(pcm.rate)
    except ValueError as error:
        raise ApiError(400, "bad_parameters", str(error)) from None
    windows = flag_parameter(query, "windows")
    return LiveStream(PcmDecoder(pcm), streamer, windows, runner.max_seconds, restart=make_streamer,
                      limit_whole_stream=limit_whole_stream)


def _number(query, name: str, kind: type, default):
    """A finite int or float query parameter, or 400 naming it (`int('1.5')`'s own message did not)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ApiError(400, "bad_parameters", f"{name} must be {'a whole number' if kind is int else 'a number'}, "
                       f"got {raw!r}") from None
    if not math.isfinite(value):  # inf used to reach int(round(inf)): a 500
        raise ApiError(400, "bad_parameters", f"{name} must be finite, got {raw!r}")
    return value


def messages(results, id2label, windows: bool) -> list[dict]:
    out = []
    for result in results:
        if windows:
            out.append({"event": "window", **result.to_dict(id2label)})
        out.extend(event.to_dict() for event in result.events)
    return out


async def within(receive, idle_timeout: float, deadline: float):
    """The next message or body chunk, or 408: none came for `idle_timeout` s (a client that connects and
    sends nothing), or the stream outlasted `deadline` (a client trickling bytes to hold a connection)."""
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(receive, max(0.0, min(idle_timeout, remaining)))
    except asyncio.TimeoutError:
        why = f"no audio for {idle_timeout:g} s" if remaining > idle_timeout else "it took longer than its " \
            "--max_seconds of audio would in real time"
        raise ApiError(408, "timeout", f"stream: {why} (send PCM, then `end` or the end of the body)") from None


async def run_on_model_thread(runner: ModelRunner, function, *args):
    return await asyncio.get_running_loop().run_in_executor(runner.batcher.executor, function, *args)


async def stream_websocket(websocket: WebSocket, runner: ModelRunner, idle_timeout: float) -> None:
    await websocket.accept()
    try:
        # answered as it goes, one window held: a live microphone may stream for hours
        live = await open_stream(runner, websocket.query_params, limit_whole_stream=False)
        await _websocket_messages(websocket, runner, live, idle_timeout)
    except ApiError as error:
        try:
            await websocket.send_json({"event": "error", "error": error.message, "kind": error.kind})
            await websocket.close(code=1008)
        except (WebSocketDisconnect, RuntimeError, OSError):  # the client has gone already
            return
    except WebSocketDisconnect:
        return


async def _websocket_messages(websocket: WebSocket, runner: ModelRunner, live: LiveStream, idle_timeout: float):
    """Feed binary messages until `end`; a client that sends nothing is let go after `idle_timeout` s (it
    used to hold its connection and stream for ever), and any other text is refused (it used to be ignored,
    so a client that ended with another word waited for an answer that never came)."""
    deadline = math.inf  # only pauses end it
    while True:
        message = await within(websocket.receive(), idle_timeout, deadline)
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            for out in await run_on_model_thread(runner, live.feed, message["bytes"]):
                await websocket.send_text(json.dumps(out))
        elif (message.get("text") or "").strip() == "end":
            break
        else:
            raise ApiError(400, "bad_message", f"unknown text message {(message.get('text') or '')[:40]!r}: send "
                           "PCM as binary messages, and the text `end` to finish")
    for out in await run_on_model_thread(runner, live.finish):
        await websocket.send_text(json.dumps(out))
    await websocket.close()


async def stream_post(request: Request, live: LiveStream, runner: ModelRunner, max_bytes: int,
                      idle_timeout: float) -> Response:
    """The body may take as long as its audio lasts (`arecord | curl -T -`): the request's timeout bounds
    each pause between its chunks, not the whole (it used to end any live stream longer than itself, all
    events lost), and the whole is bounded by `--max_seconds` of audio arriving in real time."""
    deadline = asyncio.get_running_loop().time() + live.max_stream_seconds + idle_timeout
    lines, body = [], iter_body(request, max_bytes)
    while (chunk := await within(anext(body, None), idle_timeout, deadline)) is not None:
        if chunk:
            lines.extend(await run_on_model_thread(runner, live.feed, chunk))
    lines.extend(await run_on_model_thread(runner, live.finish))
    return Response("".join(json.dumps(line) + "\n" for line in lines), media_type="application/x-ndjson")
