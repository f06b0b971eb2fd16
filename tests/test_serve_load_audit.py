"""`hfspeech serve` under load: fairness between a long upload and short clips, one bad request not failing
the others batched with it, connections that never finish their headers, and which model file is served.

The batcher is driven directly with a stand-in model function (the batcher is what is tested, not the model);
the rest runs the real server (`ServerProcess`) or the real `ModelRunner` on the tiny trained CNN.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import threading

import pytest

from hfspeech.serve.batching import DynamicBatcher
from hfspeech.serve.launcher import ServerProcess
from hfspeech.serve.runner import ModelRunner

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def batches_of(requests_items: list[list], max_batch_size: int, fail_on=None, later: list | None = None):
    """Run `requests_items` through a batcher whose model doubles each item (and fails on a batch holding
    `fail_on`); `later` is submitted once the first batch is running. -> (results, the batches run)."""
    batches: list[list] = []
    go = threading.Event()  # the first batch runs once `later` is queued: no race with the clock

    def model(items):
        batches.append(list(items))
        go.wait(30)
        if fail_on is not None and fail_on in items:
            raise RuntimeError("the model cannot take this window")
        return [item * 2 for item in items]

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=max_batch_size, max_wait_ms=0)
        batcher.start()
        first = [asyncio.ensure_future(batcher.submit(items)) for items in requests_items]
        while not batches:  # the first batch has been taken from the queue
            await asyncio.sleep(0.001)
        second = [asyncio.ensure_future(batcher.submit(items)) for items in later or []]
        await asyncio.sleep(0)  # they are queued
        go.set()
        results = await asyncio.gather(*first, *second, return_exceptions=True)
        await batcher.stop()
        return results

    return asyncio.run(main()), batches


def test_a_short_clip_is_not_queued_behind_every_window_of_a_long_upload():
    long = list(range(1000, 1400))  # a long file's 400 windows: 50 batches of 8
    results, batches = batches_of([long], 8, later=[[1]])
    assert results == [[2 * x for x in long], [2]]
    # The short request's window runs in the batch after the one running when it came, not after all 50.
    when = next(i for i, batch in enumerate(batches) if 1 in batch)
    assert when <= 2, f"the short clip waited for {when} batches of the long one"
    assert sorted(x for batch in batches for x in batch) == sorted(long + [1])  # each window once


def test_one_request_the_model_fails_on_does_not_fail_the_others_in_its_batch():
    results, batches = batches_of([[1], [2, 3], [4], [5], [6]], 8, fail_on=4)
    assert results[:2] == [[2], [4, 6]] and results[3:] == [[10], [12]]
    assert isinstance(results[2], RuntimeError)
    assert len(batches[0]) == 6  # they did share a batch


def test_a_batch_of_one_request_that_fails_fails_that_request_once():
    results, batches = batches_of([[1, 2, 3]], 8, fail_on=2)
    assert isinstance(results[0], RuntimeError) and len(batches) == 1


def loaded_runner(model) -> ModelRunner:
    """The server's `ModelRunner` on `model`, loaded as `hfspeech serve` loads it."""
    runner = ModelRunner(str(model))

    async def load():
        runner.start_loading()
        await runner.wait_ready()
        await runner.batcher.stop()

    asyncio.run(load())
    return runner


@pytest.fixture(scope="module")
def export_folder(trained_cnn, tmp_path_factory):
    """An ONNX export holding model.onnx and a model_quantized.onnx beside it, as `--quantize` leaves it
    (here the fp32 graph under both names: which file runs is what is tested, not int8)."""
    from hfspeech.export import export_onnx

    onnx_file = export_onnx(trained_cnn, tmp_path_factory.mktemp("load_audit") / "onnx")
    quantized = onnx_file.parent / "model_quantized.onnx"
    shutil.copy(onnx_file, quantized)
    return onnx_file.parent


def test_info_and_the_log_say_which_file_of_an_export_folder_is_served(export_folder, trained_cnn, caplog):
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    folder_info = loaded_runner(export_folder).info()
    assert folder_info["backend"] == "onnx" and folder_info["model_file"] == "model.onnx"
    assert f"serving {export_folder / 'model.onnx'} (onnx)" in caplog.text
    quantized_info = loaded_runner(export_folder / "model_quantized.onnx").info()
    assert quantized_info["model_file"] == "model_quantized.onnx"
    run_info = loaded_runner(trained_cnn).info()  # a training run: its weights, or its TorchScript twin
    assert run_info["model_file"] in ("model.safetensors", "torchscript/model.torchscript.pt")
    assert str(trained_cnn) not in str(run_info)  # which file, not where it lives


@pytest.fixture(scope="module")
def quick_timeout_server(trained_cnn):
    with ServerProcess(trained_cnn, "--request_timeout", "1") as running:
        yield running


def held_for(server, sent: bytes, patience: float = 15.0) -> tuple[bytes, bool]:
    """What the server answers a connection that sent `sent` and no more, and whether it closed it within
    `patience` s (15x the server's timeout: a loaded machine is slow, not that slow)."""
    with socket.create_connection((server.host, server.port), timeout=patience) as connection:
        connection.sendall(sent)
        answer = b""
        try:
            while chunk := connection.recv(4096):
                answer += chunk
        except socket.timeout:
            return answer, False
        return answer, True


def test_a_connection_that_never_finishes_its_headers_is_let_go(quick_timeout_server):
    answer, closed = held_for(quick_timeout_server, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Le")
    assert closed, "a request whose headers stopped arriving held its connection"
    assert answer.startswith(b"HTTP/1.1 408") and b'"kind": "timeout"' in answer
    answer, closed = held_for(quick_timeout_server, b"")  # connected, sent nothing
    assert closed and answer == b""


def test_a_slow_but_whole_request_and_keep_alive_still_work(quick_timeout_server):
    import requests

    with requests.Session() as session:  # one connection, kept alive between requests
        for _ in range(3):
            assert session.get(f"{quick_timeout_server.url}/health", timeout=10).json() == {"status": "ok"}
    with socket.create_connection((quick_timeout_server.host, quick_timeout_server.port), timeout=15) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # headers in two parts, well in time
        connection.sendall(b"Connection: close\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
