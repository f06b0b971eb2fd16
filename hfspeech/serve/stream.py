"""Live audio: raw PCM in, label events out, as `hfspeech stream` does on stdin.

`WebSocket /stream?format=s16le&rate=16000&channels=1&min_windows=3`: binary messages carry PCM (any
sizes; a partial frame waits for the rest), each window's label events come back as JSON text messages
the moment its window completes, and a text message `end` (or closing) flushes the last window and answers
the counts (`{"event": "end", ...}`). `POST /stream` takes the same PCM as a (chunked) body and answers the
events as JSON lines once the body ends. The stream's windows run on the model thread, between batches.
"""

from __future__ import annotations

import asyncio
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from hfspeech.inference.sources import PcmDecoder, PcmFormat
from hfspeech.inference.streaming import StreamingClassifier
from hfspeech.serve.errors import ApiError
from hfspeech.serve.payload import iter_body
from hfspeech.serve.runner import ModelRunner


async def open_stream(runner: ModelRunner, query) -> tuple[PcmDecoder, StreamingClassifier, bool]:
    """(PCM decoder, streaming classifier, whether to send every window) from the query string."""
    classifier = await runner.wait_ready()
    try:
        pcm = PcmFormat(query.get("format", "s16le"), int(query.get("rate", classifier.sampling_rate)),
                        int(query.get("channels", 1)))
        streamer = StreamingClassifier(
            classifier, _float(query, "window_seconds"), _float(query, "hop_seconds"), input_rate=pcm.rate,
            threshold=float(query.get("threshold", 0.5)), min_windows=int(query.get("min_windows", 3)),
            vad=query.get("vad", "none"))
    except ValueError as error:
        raise ApiError(400, "bad_parameters", str(error)) from None
    return PcmDecoder(pcm), streamer, str(query.get("windows", "false")).lower() in ("1", "true", "yes")


def _float(query, name: str):
    return float(query[name]) if query.get(name) else None


def messages(results, id2label, windows: bool) -> list[dict]:
    out = []
    for result in results:
        if windows:
            out.append({"event": "window", **result.to_dict(id2label)})
        out.extend(event.to_dict() for event in result.events)
    return out


async def run_on_model_thread(runner: ModelRunner, function, *args):
    return await asyncio.get_running_loop().run_in_executor(runner.batcher.executor, function, *args)


async def stream_websocket(websocket: WebSocket, runner: ModelRunner) -> None:
    await websocket.accept()
    try:
        decode, streamer, windows = await open_stream(runner, websocket.query_params)
    except ApiError as error:
        await websocket.send_json({"event": "error", "error": error.message, "kind": error.kind})
        await websocket.close(code=1008)
        return
    id2label = streamer.id2label
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes"):
                results = await run_on_model_thread(runner, streamer.feed, decode(message["bytes"]))
                for out in messages(results, id2label, windows):
                    await websocket.send_text(json.dumps(out))
            elif message.get("text", "").strip() == "end":
                break
        results = await run_on_model_thread(runner, streamer.finish)
        for out in messages(results, id2label, windows) + [streamer.stats.to_dict()]:
            await websocket.send_text(json.dumps(out))
        await websocket.close()
    except WebSocketDisconnect:
        return


async def stream_post(request: Request, runner: ModelRunner, max_bytes: int) -> Response:
    decode, streamer, windows = await open_stream(runner, request.query_params)
    lines = []
    async for chunk in iter_body(request, max_bytes):
        if chunk:
            results = await run_on_model_thread(runner, streamer.feed, decode(chunk))
            lines.extend(messages(results, streamer.id2label, windows))
    results = await run_on_model_thread(runner, streamer.finish)
    lines.extend(messages(results, streamer.id2label, windows) + [streamer.stats.to_dict()])
    return Response("".join(json.dumps(line) + "\n" for line in lines), media_type="application/x-ndjson")
