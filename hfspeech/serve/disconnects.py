"""A classification whose client left before its answer is cancelled (`unless_client_leaves`, used by app.py)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from hfspeech.serve.errors import ApiError


async def unless_client_leaves(request: Request, work):
    """`work`'s result, or, when the client closes the connection first, cancel it (its windows still queued
    are never run) and answer 499 to nobody. Its windows used to be computed all the same: a client that
    gave up on a long file, or retried it, held up everyone behind it. Starlette's `StreamingResponse`
    listens for the disconnect the same way: once the body is read, the next ASGI message is only that."""
    work, left = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the request times out (408): nothing is left running
        left.cancel()
        if not work.done():
            work.cancel()
    if work in done:
        return work.result()
    raise ApiError(499, "client_closed", "the client closed the connection before the answer was ready")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
