"""ASGI middleware: latency, rate limiting, chaos, connection drops and the call log.

It sits outside FastAPI so it can (a) answer 429/5xx before a route runs, exactly like an edge
limiter, and (b) cut the TCP connection, which no HTTP response can imitate: a client must see a
``ConnectionError`` and not know whether its write happened.

Early repeats: when a 429 or 503 announces a wait (``Retry-After``, else ``X-RateLimit-Reset``),
the time is remembered for that exact request (credential, method, path, query and body). The same
request arriving before that time, less :data:`EARLY_TOLERANCE_S`, is logged with
``"early_repeat": true`` and ``early_by_ms``: a client that ignores the wait, or whose other
thread never heard of it, shows up in ``GET /_sim/calls``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.routing import Match

from atlassian_sandbox.errors import error_body
from atlassian_sandbox.limits import Decision, rate_limit_headers, success_rate_headers

if TYPE_CHECKING:
    from fastapi import FastAPI

    from atlassian_sandbox.runtime import Runtime

# Scoped tokens and OAuth apps reach Jira through api.atlassian.com/ex/jira/{cloudId} (§1).
EX_PREFIX = re.compile(r"^/ex/jira/[^/]+(?=/rest/)")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: Clock slack before a repeat counts as early (the client's and this server's clocks differ).
EARLY_TOLERANCE_S = 0.01


class SimulatedConnectionDrop(ConnectionError):
    """Raised where no transport exists to close (in-process TestClient)."""


def family_of(path: str) -> str:
    if path.startswith("/_sim"):
        return "sim"
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/users/"):
        return "usermgmt"
    if path.startswith("/rest/servicedeskapi"):
        return "jsm"
    if path.startswith("/rest/"):
        return "jira"
    return "other"


class SimMiddleware:
    def __init__(self, app: FastAPI, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self._latency_rng = random.Random(0)
        #: exact request -> the (monotonic) time a 429/503 told its sender to come back
        self._announced: dict[tuple[str, ...], float] = {}

    def _match(self, scope: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        partial: tuple[str | None, dict[str, Any]] = (None, {})
        for route in self.app.router.routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", None), dict(child.get("path_params", {}))
            if match == Match.PARTIAL and partial[0] is None:
                partial = (getattr(route, "path", None), dict(child.get("path_params", {})))
        return partial

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        alias = EX_PREFIX.match(path)
        if alias:
            path = path[alias.end() :]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        family = family_of(path)
        if family == "sim":
            await self.app(scope, receive, send)  # test endpoints: never limited, delayed or logged
            return

        rt = self.runtime
        config = rt.config
        started = time.perf_counter()
        method = scope["method"]
        body = await _read_body(receive)
        replay = _replay(body)
        template, params = self._match(scope)
        entry: dict[str, Any] = {
            "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "path_template": template,
            "family": family,
            "status": None,
            "injected": None,
            "account_id": _account_id(params, scope),
            "group_id": params.get("group_id"),
        }
        if method in WRITE_METHODS:
            entry["body"] = _decode(body)
        request_key = _request_key(scope, method, path, body)
        self._check_early_repeat(request_key, entry)

        if config.latency_ms or config.latency_jitter_ms:
            delay = config.latency_ms + self._latency_rng.uniform(0, config.latency_jitter_ms)
            await asyncio.sleep(delay / 1000.0)

        extra_headers: dict[str, str] = {}
        if config.rate_limit_enabled and family != "other":
            credential = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            endpoint = template or path
            rate = config.rate_limit_endpoints.get(f"{method} {endpoint}", config.rate_limit_per_second)
            decision = rt.limiter.take((credential, endpoint, method), rate, config.rate_limit_burst)
            if not decision.allowed:
                limited = rate_limit_headers(family, decision, config)
                self._announce(request_key, limited)
                await self._error(send, family, 429, "Rate limit exceeded", limited)
                self._log(entry, 429, "rate_limit", started)
                return
            extra_headers = success_rate_headers(family, decision)

        kind = rt.chaos.roll(config, method, path)
        if kind in ("429", "503", "500"):
            status = int(kind)
            headers: dict[str, str] = {}
            if status == 429:
                fake = Decision(False, config.rate_limit_burst, 0, float(config.chaos_retry_after))
                headers = rate_limit_headers(family, fake, config)
            elif status == 503:
                headers = {"Retry-After": str(config.chaos_retry_after)}
            message = {429: "Rate limit exceeded", 503: "Service unavailable", 500: "Internal server error"}[
                status
            ]
            self._announce(request_key, headers)
            await self._error(send, family, status, message, headers)
            self._log(entry, status, kind, started)
            return
        if kind == "drop_before":
            self._log(entry, None, kind, started)
            await _drop(send)
            return

        captured: dict[str, Any] = {"status": None, "logged": False}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                if extra_headers:
                    message = {
                        **message,
                        "headers": list(message.get("headers", []))
                        + [(k.lower().encode(), v.encode()) for k, v in extra_headers.items()],
                    }
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Logged before the last byte goes out: once a client has its answer, the call is
                # in the log (a test reading the log right after a call must find it).
                self._log(entry, captured["status"], kind, started)
                captured["logged"] = True
            if kind != "drop_after":
                await send(message)

        await self.app(scope, replay, capture)
        if not captured["logged"]:
            self._log(entry, captured["status"], kind, started)
        if kind == "drop_after":
            # The write above has been applied; the client never learns the outcome.
            await _drop(send)

    def _announce(self, key: tuple[str, ...], headers: dict[str, str]) -> None:
        """Remember when the sender of this request was told it may come back."""
        wait = _announced_wait(headers)
        if wait is None:
            return
        now = time.monotonic()
        if len(self._announced) > 10_000:  # forget announcements that have passed
            self._announced = {k: t for k, t in self._announced.items() if t > now}
        self._announced[key] = max(self._announced.get(key, 0.0), now + wait)

    def _check_early_repeat(self, key: tuple[str, ...], entry: dict[str, Any]) -> None:
        come_back = self._announced.get(key)
        if come_back is None:
            return
        early = come_back - time.monotonic()
        if early > EARLY_TOLERANCE_S:
            entry["early_repeat"] = True
            entry["early_by_ms"] = round(early * 1000, 3)

    async def _error(
        self, send: Any, family: str, status: int, message: str, headers: dict[str, str]
    ) -> None:
        payload = json.dumps(error_body(family, status, message)).encode()
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    def _log(self, entry: dict[str, Any], status: int | None, injected: str | None, started: float) -> None:
        entry["status"] = status
        entry["injected"] = injected
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        self.runtime.calls.append(entry)


def _request_key(scope: dict[str, Any], method: str, path: str, body: bytes) -> tuple[str, ...]:
    """The identity of a request: credential, method, path, query and body."""
    credential = dict(scope.get("headers") or []).get(b"authorization", b"")
    return (
        hashlib.sha256(credential).hexdigest(),
        method,
        path,
        scope.get("query_string", b"").decode("latin-1"),
        hashlib.sha256(body).hexdigest(),
    )


def _announced_wait(headers: dict[str, str]) -> float | None:
    """Seconds the headers of a 429/503 tell the client to wait (``Retry-After`` first)."""
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        try:
            return float(retry_after)
        except ValueError:
            return None
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, a real server would eventually report a disconnect; block until then.
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def _decode(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _account_id(params: dict[str, Any], scope: dict[str, Any]) -> str | None:
    if params.get("account_id"):
        return str(params["account_id"])
    query = scope.get("query_string", b"").decode("latin-1")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "accountId" and value:
            return unquote(value)
    return None


async def _drop(send: Any) -> None:
    """Close the TCP connection without a (complete) response.

    uvicorn's ``send`` is a bound method of the request cycle, which holds the transport; aborting
    it makes a ``requests`` client raise ``ConnectionError``. Without a transport (TestClient) the
    best imitation is an exception escaping the app.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise SimulatedConnectionDrop("sandbox chaos: connection dropped")
    transport.abort()
    for _ in range(50):
        if getattr(cycle, "disconnected", False):
            return
        await asyncio.sleep(0)
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True  # keep uvicorn from answering 500 on a socket we closed
