"""Who the server answers: the host name a request is addressed to, and the API key it carries.

A server on loopback is still reachable from any web page the user opens: the page's site rebinds its DNS
name to 127.0.0.1 ("DNS rebinding"), and the browser then treats the server's answers as that site's own,
readable by its script. The browser still sends the site's name in `Host`, so a loopback server answers only
the names of this machine (localhost, 127.0.0.1, [::1]) and those `--allowed_hosts` adds, as Jupyter does.
A WebSocket is not bound by the browser's same-origin rule at all: one whose `Origin` (the page that opened
it) is another site is refused too. So is a POST (any method but GET, HEAD, OPTIONS) from another site's
page: a "simple" `fetch(url, {method: "POST", mode: "no-cors"})` is sent without a CORS preflight, and the page
cannot read the answer, but the server ran the model for it (a page could keep the user's machine busy). These
two are refused on every address, not only loopback: a server inside a private network, which the attacker
cannot reach, is reached by its users' browsers (cross-site request forgery). "Another site" is an `Origin`
whose name is neither the request's own `Host` name (the server's page, whatever name it was opened by) nor
one of `--allowed_hosts` (`*`: any page). A browser names the page in `Origin` (or, failing that, says
`Sec-Fetch-Site: cross-site`; its `same-origin`, which no page can forge, lets the server's own page through a
proxy that rewrites `Host`); curl, Python and the Hub's clients send neither and pass. Starlette's
`TrustedHostMiddleware` answers a plain-text 400, not the server's `{"error", "kind"}` JSON, and does not look
at `Origin`: hence this small middleware, whose refusals are counted in /metrics as the other routes' answers
are (`refuse`, which the API key's and the busy server's refusals share).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Iterable, Optional
from urllib.parse import parse_qs, urlsplit

from hfspeech.serve.errors import ApiError, send_error
from hfspeech.serve.metrics import ServerMetrics, route_name

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # read only: another site's page may send them (it cannot read answers)


def is_loopback(host: str) -> bool:
    """Every address `host` resolves to is this machine's own (127.0.0.1, ::1, `localhost`)."""
    try:
        return all(ipaddress.ip_address(found[4][0]).is_loopback for found in socket.getaddrinfo(host, None))
    except (OSError, ValueError):  # an address ipaddress cannot read (an IPv6 scope): not known to be loopback
        return False


def names_to_answer(bind_host: str, allowed_hosts: Optional[Iterable[str]]) -> Optional[Iterable[str]]:
    """The `allowed_hosts` the app gets when it listens on `bind_host`: none given on loopback means this
    machine's names only ([]: the app adds them); beyond loopback, none given stays None (any name)."""
    if allowed_hosts is None and is_loopback(bind_host):
        return []
    return allowed_hosts


def host_name(value: str) -> Optional[str]:
    """The name in a `Host` header or an `Origin` ("http://name:port"), lower case, without port or IPv6
    brackets; None when it is not one."""
    try:
        split = urlsplit(value if "//" in value else "//" + value)
        split.port  # raises ValueError on a port that is not a number
    except ValueError:
        return None
    return split.hostname or None


def name_allowed(name: Optional[str], patterns: list[str]) -> bool:
    """`name` is one of `patterns`: an exact name, `*.example.com` (its subdomains), or `*` (any)."""
    if name is None:
        return False
    return any(pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:]))
               for pattern in patterns)


class HostCheckMiddleware:
    """Answers only requests addressed to an allowed name (403 `forbidden_host` otherwise; `allowed_hosts` None:
    any name), and WebSockets and POSTs sent by a page of the request's own `Host` name or an allowed one, on
    every address: a server beyond loopback is still reached by its users' browsers, so another site's page
    could make them POST to it (CSRF). A request without a `Host` (HTTP/1.0: no browser sends one) passes the
    Host check. Each refusal is counted in `metrics` (outermost, it is never seen by the app's own metrics
    middleware)."""

    def __init__(self, app, allowed_hosts: Optional[Iterable[str]], metrics: Optional[ServerMetrics] = None):
        self.app, self.metrics = app, metrics
        names = allowed_hosts.split(",") if isinstance(allowed_hosts, str) else allowed_hosts  # "a,b" as the flag
        self.patterns = None if names is None else [*LOOPBACK_NAMES,
                                                    *(name.strip().lower().strip("[]") for name in names)]

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = {key.lower(): value.decode("latin-1") for key, value in scope.get("headers") or []}
            problem = self.problem(headers, "WebSocket" if scope["type"] == "websocket" else scope.get("method"))
            if problem:
                return await refuse(scope, receive, send, ApiError(403, "forbidden_host", problem), self.metrics)
        await self.app(scope, receive, send)

    def problem(self, headers: dict, method: str) -> Optional[str]:
        """Why a request is refused (None: it is not). `method`: the HTTP method, or "WebSocket"."""
        host = headers.get(b"host")
        if host is not None and self.patterns is not None and not name_allowed(host_name(host), self.patterns):
            return f"Host {host[:100]!r} is not a name of this server (--allowed_hosts adds one)"
        fetch_site = headers.get(b"sec-fetch-site", "").strip().lower()
        if method in SAFE_METHODS or fetch_site in ("same-origin", "none"):  # the browser's word, not the page's:
            return None  # the server's own page behind a proxy that rewrites Host (its Origin is the public name)
        if "*" in (self.patterns or []):  # any page, as `--allowed_hosts '*'` says: a file:// tool's `null` too
            return None
        origin = headers.get(b"origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return f"a {method} from the page {origin[:100]!r}, another site (--allowed_hosts adds one)"
        if origin is None and fetch_site == "cross-site":
            return f"a {method} from another site's page (Sec-Fetch-Site: cross-site; --allowed_hosts adds one)"
        return None

    def origin_allowed(self, origin: str, host: Optional[str]) -> bool:
        """A page of the name the request is addressed to (any port: the same site), or of an allowed name.
        `Origin: null` (a sandboxed frame, a redirect, a file) is no site's, so never the server's own."""
        name = None if origin.strip() == "null" else host_name(origin)
        own = name is not None and host is not None and name == host_name(host)
        return own or name_allowed(name, self.patterns or [])


async def refuse(scope, receive, send, error: ApiError, metrics: Optional[ServerMetrics]) -> None:
    """A request refused before its route (another site's, no API key, busy), answered and counted as
    `GuardMiddleware` counts a route's answer: by route (`route_name`: a bounded set) and status, with its
    latency, and by kind; a WebSocket (closed at its handshake, no HTTP status) by kind only."""
    started = time.perf_counter()
    await send_error(scope, receive, send, error)
    if metrics is not None:
        if scope["type"] == "http":
            metrics.observe_request(route_name(scope["path"]), error.status, time.perf_counter() - started)
        metrics.errors.labels(error.kind).inc()


def api_key_given(scope) -> str:
    """The key a request carries: `Authorization: Bearer KEY` (the scheme in any case, RFC 7235; a bare KEY
    too), else `X-API-Key` (also beside a proxy's `Authorization: Basic`), else a WebSocket's `?api_key=`
    (a browser cannot set a WebSocket's headers)."""
    headers = dict(scope.get("headers") or [])
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, space, token = authorization.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else "" if space else authorization  # Basic: a proxy's
    given = given or headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if not given and scope["type"] == "websocket":
        given = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key") or [""])[0]
    return given
