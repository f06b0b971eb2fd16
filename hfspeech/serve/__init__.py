"""`hfspeech serve`: an HTTP server for a trained classifier that speaks the Hugging Face Hub's
audio-classification task API, so `huggingface_hub.InferenceClient(model=URL).audio_classification(...)`
works against it unchanged.

The top layer beside `hfspeech.cli`: it imports `hfspeech.inference` and `hfspeech.data`; nothing below
imports it. Modules: `app` (routes, middleware, uvicorn), `runner` (the model, loaded once per process,
behind the `batching` dynamic batcher), `payload` (reading and checking a request: body size, content
type, base64 JSON, parameters), `connections` (uvicorn's HTTP protocol with a deadline on a request's
headers), `errors` (one JSON error shape, no tracebacks or paths), `metrics`
(Prometheus; `metrics_folder` keeps `--workers N`'s files from growing), `disconnects` (a client that
leaves), `stream` (live PCM over a WebSocket or a streamed POST), `static/` (the web page).
"""
