"""The one retry, back-off and pacing policy for every Atlassian call, and when a write may be replayed.

Atlassian answers an exhausted rate limit with ``429`` (sometimes ``503``) and tells the client when
to come back in one of two ways: Jira sends ``Retry-After`` (seconds, or an HTTP date), the Admin
API sends ``X-RateLimit-Reset`` (an ISO-8601 instant such as ``2023-10-11T10:15Z``). Atlassian's
guidance is to treat ``Retry-After`` as a floor, add positive jitter, back off exponentially when
no hint is given, and never retry other ``4xx``. A wait longer than :attr:`RetryPolicy.max_wait` is
not slept through inside a task: :class:`AtlassianRetryExhausted` is raised so the Airflow task retry
(which frees the worker slot) picks the work up later.

Requests that change state are only replayed when the server certainly did not process them
(``429``, ``503`` with ``Retry-After``, or a connection that was never established): a lifecycle
delete that timed out mid-flight must be re-checked, not re-sent.

What is here, from one request to a batch of writes:

* :class:`RetryPolicy`: one request, retried (each hook sends every request through it).
* :class:`RatePacer` / :func:`paced_call`: threads sharing an endpoint's rate limit.
* :func:`write_unless_done`: a state-changing call whose ambiguous failure is resolved by re-reading
  Atlassian (with hooks made by :func:`guard_write_replays`), never by re-sending blindly.

A wait announced by a ``429``/``503`` is shared by every hook of the credential
(:mod:`~atlassian_cleanup.client.credentials`), and every wait wakes when the task is stopped
(:mod:`~atlassian_cleanup.client.stopping`). The exceptions live in
:mod:`~atlassian_cleanup.client.errors`; the ones callers catch are importable from here too.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from urllib3.exceptions import ConnectTimeoutError

from atlassian_cleanup.client.credentials import CredentialState, credential_forms, credential_state
from atlassian_cleanup.client.errors import (
    AtlassianApiError,
    AtlassianAuthError,
    AtlassianNotFoundError,
    AtlassianPaginationError,
    AtlassianPermissionError,
    AtlassianRetryExhausted,
    error_from_response,
)
from atlassian_cleanup.client.rate_limit_headers import (
    RateLimitTracker,
    parse_rate_limit_reset,
    parse_retry_after,
)
from atlassian_cleanup.client.stopping import (
    AtlassianCallsCancelled,
    StopsAtlassianCallsOnKill,
    atlassian_calls_cancelled,
    begin_atlassian_calls,
    cancel_atlassian_calls,
    interruptible_sleep,
    raise_if_cancelled,
)

# Callers (operators, engine, tests) import the client's errors and stop flag from this module.
__all__ = [
    "AtlassianApiError",
    "AtlassianAuthError",
    "AtlassianCallsCancelled",
    "AtlassianNotFoundError",
    "AtlassianPaginationError",
    "AtlassianPermissionError",
    "AtlassianRetryExhausted",
    "CredentialState",
    "RatePacer",
    "RetryPolicy",
    "StopsAtlassianCallsOnKill",
    "atlassian_calls_cancelled",
    "begin_atlassian_calls",
    "cancel_atlassian_calls",
    "credential_forms",
    "credential_state",
    "guard_write_replays",
    "interruptible_sleep",
    "paced_call",
    "raise_if_cancelled",
    "replay_is_safe",
    "shared_pacer",
    "write_may_have_happened",
    "write_unless_done",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_NOT_IDEMPOTENT = (
    "Not retried automatically because the call is not idempotent and may have been processed; "
    "check the account's current state before trying again"
)


# --------------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _request_never_sent(exc: requests.exceptions.RequestException) -> bool:
    """Whether a transport error certainly happened before the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    # urllib3 wraps a refused/unreachable connection as NewConnectionError, a ConnectTimeoutError
    # subclass: the TCP connection was never established, so nothing was sent.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ConnectTimeoutError)


def replay_is_safe(status: int, server_wait: float | None, *, idempotent: bool) -> bool:
    """Whether a request answered with an error ``status`` may be sent again.

    A 429, or a 503 that says when to come back, means the server did not process the request, so
    anything may be replayed; another 5xx only a request that is idempotent; a 4xx never.
    """
    if status == 429 or (status == 503 and server_wait is not None):
        return True
    return status >= 500 and idempotent


class _RetryableFailure(Exception):
    """One failed attempt that may be retried: the error, and what it tells about waiting."""

    def __init__(
        self,
        error: BaseException,
        outcome: str,
        response: requests.Response | None = None,
        server_wait: float | None = None,
    ) -> None:
        super().__init__(outcome)
        self.error = error
        #: ``429 ADMIN-429``, ``ConnectionError``: for the log and the final error.
        self.outcome = outcome
        self.response = response
        #: What the server asked to wait, or ``None`` (then the backoff applies).
        self.server_wait = server_wait

    @staticmethod
    def of(state: RetryCallState) -> _RetryableFailure:
        """The failure of the attempt ``state`` describes."""
        failure = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(failure, _RetryableFailure)
        return failure


@dataclass(frozen=True)
class RetryPolicy:
    """
    How Atlassian calls are retried (contract §7.3).

    :param max_attempts: total attempts per request, the first one included.
    :param base_delay: first exponential backoff step in seconds (doubles each retry).
    :param max_backoff: cap of the exponential backoff step in seconds.
    :param max_wait: longest single wait accepted inside a task; a longer required wait raises
        :class:`AtlassianRetryExhausted` at once so the Airflow task retry takes over.
    :param jitter: bounds of the multiplicative jitter; both ``>= 1`` so a server-given wait is a floor.
    :param sleep: called with the seconds to wait (inject a recorder in tests); the default wakes
        up at once when the task is being stopped (:func:`interruptible_sleep`).
    :param clock: returns the current aware time (for ``Retry-After`` dates and ``X-RateLimit-Reset``).
    :param rng: random source for the jitter.
    :param rate_limit: latest rate-limit headers seen; a hook gets its own tracker.
    :param credential: the per-credential state shared by every hook of the process (announced
        waits, secret forms to scrub); a hook sets it from its connection.
    """

    max_attempts: int = 5
    base_delay: float = 5.0
    max_backoff: float = 30.0
    max_wait: float = 300.0
    jitter: tuple[float, float] = (1.0, 1.3)
    sleep: Callable[[float], None] = field(default=interruptible_sleep, compare=False, repr=False)
    clock: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    rate_limit: RateLimitTracker = field(default_factory=RateLimitTracker, compare=False, repr=False)
    credential: CredentialState | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        low, high = self.jitter
        if not 1.0 <= low <= high:
            raise ValueError("jitter must satisfy 1.0 <= low <= high: a server-given wait is a floor")

    @classmethod
    def without_sleep(cls, **overrides: Any) -> RetryPolicy:
        """
        A policy that never actually waits (tests, sandbox runs); the computed waits are still checked.

        :param overrides: any other field, e.g. ``max_attempts=3``.
        :return: the policy.
        """
        overrides.setdefault("sleep", lambda _seconds: None)
        return cls(**overrides)

    def backoff(self, attempt: int) -> float:
        """
        The exponential backoff before retry number ``attempt`` (1-based), before jitter.

        :param attempt: the number of the attempt that just failed.
        :return: ``min(max_backoff, base_delay * 2 ** (attempt - 1))`` seconds.
        """
        return min(self.max_backoff, self.base_delay * 2.0 ** (attempt - 1))

    def server_delay(self, response: requests.Response) -> float | None:
        """
        The wait the server asked for: ``Retry-After``, else (on 429/503) ``X-RateLimit-Reset`` − now.

        :param response: the failed response.
        :return: seconds, or ``None`` when the server gave no usable hint.
        """
        now = self.clock()
        delay = parse_retry_after(response.headers.get("Retry-After"), now)
        if delay is not None:
            return delay
        if response.status_code in (429, 503):
            until_reset = parse_rate_limit_reset(response.headers.get("X-RateLimit-Reset"), now)
            if until_reset is not None and until_reset > 0:
                return until_reset
        return None

    def _jittered(self, base: float) -> float:
        low, high = self.jitter
        return base * self.rng.uniform(low, high)

    def execute(
        self,
        send: Callable[[], requests.Response],
        *,
        method: str,
        path: str,
        idempotent: bool,
        conn_id: str | None = None,
    ) -> requests.Response:
        """
        Send a request, retrying per the policy, and return the final 2xx/3xx response.

        :param send: performs the request once and returns the response (may raise ``requests`` errors).
        :param method: HTTP method, for logs and errors.
        :param path: URL path without query string, for logs and errors.
        :param idempotent: whether replaying the request after an ambiguous failure is safe.
        :param conn_id: Airflow connection id, named in credential errors.
        :return: the successful response.
        :raises AtlassianApiError: (or a subclass) when the request fails for good.
        """
        method = method.upper()
        credential = self.credential
        scrub = credential.scrub if credential is not None else None
        slept_until = 0.0  # the announced time this thread's own back-off already waited for

        def attempt() -> requests.Response:
            nonlocal slept_until
            self._await_announced_wait(method, path, slept_until)
            try:
                response = send()
            except requests.exceptions.RequestException as exc:
                if not (idempotent or _request_never_sent(exc)):
                    raise AtlassianApiError(
                        f"{type(exc).__name__} after the request may have reached Atlassian",
                        method=method,
                        path=path,
                        detail=_NOT_IDEMPOTENT,
                    ) from exc
                raise _RetryableFailure(exc, type(exc).__name__) from exc
            self.rate_limit.observe(response)
            status = response.status_code
            if status < 400:
                return response
            error = error_from_response(response, method, path, conn_id, scrub)
            server_wait = self.server_delay(response)
            if credential is not None and server_wait is not None and status in (429, 503):
                # Every thread and hook on this credential now holds this endpoint back.
                credential.announce(method, path, server_wait)
                slept_until = credential.not_before(method, path)
            if not replay_is_safe(status, server_wait, idempotent=idempotent):
                raise error.with_detail(_NOT_IDEMPOTENT) if status >= 500 else error
            outcome = f"{status}{f' {error.code}' if error.code else ''}"
            raise _RetryableFailure(error, outcome, response, server_wait)

        retrying = Retrying(
            retry=retry_if_exception_type(_RetryableFailure),
            stop=self._must_give_up,
            wait=self._jittered_wait,
            sleep=self.sleep,
            before_sleep=functools.partial(self._log_retry, method, path),
            retry_error_callback=functools.partial(self._give_up, method, path),
        )
        return retrying(attempt)

    def _base_wait(self, state: RetryCallState) -> float:
        """The server's wait for the failure, else the exponential backoff of its attempt."""
        failure = _RetryableFailure.of(state)
        return failure.server_wait if failure.server_wait is not None else self.backoff(state.attempt_number)

    def _must_give_up(self, state: RetryCallState) -> bool:
        return state.attempt_number >= self.max_attempts or self._base_wait(state) > self.max_wait

    def _jittered_wait(self, state: RetryCallState) -> float:
        if self._must_give_up(state):
            return 0.0  # nothing is slept: no jitter is drawn for it
        base = self._base_wait(state)
        return min(self._jittered(base), max(base, self.max_wait))

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        failure = _RetryableFailure.of(state)
        response = failure.response
        remaining = (
            f", X-RateLimit-Remaining={self.rate_limit.remaining}"
            if response is not None and response.headers.get("X-RateLimit-Remaining") is not None
            else ""
        )
        log.warning(
            "Atlassian %s %s: %s (attempt %d/%d); retrying in %.1fs%s",
            method,
            path,
            failure.outcome,
            state.attempt_number,
            self.max_attempts,
            state.upcoming_sleep,
            remaining,
        )

    def _give_up(self, method: str, path: str, state: RetryCallState) -> NoReturn:
        failure = _RetryableFailure.of(state)
        if state.attempt_number >= self.max_attempts:
            message = f"still failing after {self.max_attempts} attempts (last: {failure.outcome})"
            detail = "Giving up for now; the Airflow task retry will pick it up"
        else:
            message = (
                f"Atlassian asked to wait {self._base_wait(state):.0f}s ({failure.outcome}), more than the "
                f"{self.max_wait:.0f}s allowed inside a task"
            )
            detail = "Not waiting; the Airflow task retry will pick it up"
        raise AtlassianRetryExhausted(
            message,
            status=failure.response.status_code if failure.response is not None else None,
            code=getattr(failure.error, "code", None),
            method=method,
            path=path,
            detail=detail,
        ) from failure.error

    def _await_announced_wait(self, method: str, path: str, slept_until: float = 0.0) -> None:
        """Stop if the task is being stopped; wait out a wait another thread was told about.

        :param slept_until: the announced time this thread's own back-off sleep already covered.
        """
        raise_if_cancelled(f"{method} {path}")
        credential = self.credential
        if credential is None:
            return
        not_before = credential.not_before(method, path)
        if not_before <= slept_until:
            return
        wait = not_before - time.monotonic()
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise AtlassianRetryExhausted(
                f"Atlassian asked to wait {wait:.0f}s before calling this again, more than the "
                f"{self.max_wait:.0f}s allowed inside a task",
                method=method,
                path=path,
                detail="Not waiting; the Airflow task retry will pick it up",
            )
        log.info("Atlassian %s %s: waiting %.1fs, as Atlassian asked on an earlier call", method, path, wait)
        self.sleep(wait)
        raise_if_cancelled(f"{method} {path}")


# --------------------------------------------------------------------------------------------------
# Pacing: several threads sharing one endpoint's rate limit
# --------------------------------------------------------------------------------------------------


class RatePacer:
    """
    Space the calls of several threads to one endpoint so they use its rate limit without exceeding it.

    Before each call :meth:`wait` hands out the next slot; after it :meth:`observe` gets the
    endpoint's ``X-RateLimit-Remaining`` / ``X-RateLimit-Limit``. The refill rate is measured from
    those: over a few seconds, ``(successful calls + change of Remaining) / elapsed``. While more
    than 3/4 of the bucket is left calls go out unpaced (bursts are what the bucket is for); below
    that they are spaced at the measured refill rate, 10 % slower when less than 1/4 is left, so
    the bucket settles instead of running dry. Without rate-limit headers nothing is paced.

    :param window: seconds of observations the rate is measured over.
    :param clock: monotonic time (tests inject a fake one).
    :param sleep: called with the seconds to wait (by default it wakes up when the task is stopped).
    """

    def __init__(
        self,
        *,
        window: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = interruptible_sleep,
    ) -> None:
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._successes = 0
        self._samples: deque[tuple[float, int, int]] = deque()
        #: Seconds between two calls (0 = unpaced); ``refill`` is the measured tokens per second.
        self.interval = 0.0
        self.refill: float | None = None

    def wait(self) -> None:
        """Block until this thread may make its call."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def observe(self, remaining: int | None, limit: int | None, *, ok: bool) -> None:
        """Record one finished call and the rate-limit headers of its (last) response."""
        with self._lock:
            now = self._clock()
            if ok:
                self._successes += 1
            if remaining is None or not limit:
                return
            self._samples.append((now, remaining, self._successes))
            while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
                self._samples.popleft()
            first_at, first_remaining, first_successes = self._samples[0]
            if now - first_at < min(0.5, self.window):
                return
            refill = (self._successes - first_successes + remaining - first_remaining) / (now - first_at)
            if refill <= 0:
                return
            self.refill = refill
            level = remaining / limit
            if level >= 0.75:
                self.interval = 0.0
            else:
                self.interval = 1.0 / (refill * (0.9 if level < 0.25 else 1.0))


#: One pacer per credential and endpoint for the whole process: every engine, thread and hook
#: using the same credential shares the endpoint's budget.
_PACERS: dict[tuple[int, str], RatePacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(hook: Any, endpoint: str) -> RatePacer:
    """The process's :class:`RatePacer` for ``endpoint`` on ``hook``'s credential."""
    credential = getattr(getattr(hook, "retry_policy", None), "credential", None)
    key = (id(credential) if credential is not None else id(hook), endpoint)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = RatePacer()
        return pacer


def paced_call(hook: Any, endpoint: str, call: Callable[[], T]) -> T:
    """
    Make one call to ``endpoint`` through the endpoint's :func:`shared_pacer`.

    :param hook: the hook ``call`` uses; its credential selects the pacer, its ``rate_limit``
        tracker gives the response's headers.
    :param endpoint: names the endpoint (one rate-limit bucket), e.g. ``users/search``.
    :param call: makes the call with ``hook``.
    :return: what ``call`` returned.
    """
    pacer = shared_pacer(hook, endpoint)
    pacer.wait()
    tracker = hook.rate_limit
    # Only this call's own headers count: a value left from an earlier response (a 429 before a
    # retry, another endpoint) would be read as this endpoint's budget.
    tracker.remaining = tracker.limit = None
    try:
        result = call()
    except AtlassianApiError:
        pacer.observe(tracker.remaining, tracker.limit, ok=False)
        raise
    pacer.observe(tracker.remaining, tracker.limit, ok=True)
    return result


# --------------------------------------------------------------------------------------------------
# Writes whose replay is decided by looking, not by the status alone
# --------------------------------------------------------------------------------------------------


def guard_write_replays(hook: Any) -> Any:
    """
    Make ``hook`` leave ambiguous write failures to :func:`write_unless_done`.

    The hooks may re-send suspend / disable / membership writes after a dropped connection or a
    5xx (correct for the *state*, since they are idempotent in effect), which would show as a
    second successful write for one action. The engine instead re-reads the account and decides
    itself, so it switches that replay off; searches keep being retried.
    """
    hook.replay_ambiguous_writes = False
    return hook


def write_may_have_happened(exc: BaseException) -> bool:
    """Whether a failed write may or may not have been applied: no response, or a server error.

    A 4xx is a definite "no", and a 429 that outlasted the retry policy is left to the Airflow
    task retry.
    """
    return isinstance(exc, AtlassianApiError) and (exc.status is None or exc.status >= 500)


def write_unless_done(write: Callable[[], T], happened: Callable[[], bool], *, attempts: int) -> T | None:
    """
    Make one write; after an ambiguous failure look, and write again only if it did not happen.

    :param write: makes the write once; must not return ``None``.
    :param happened: re-reads Atlassian and says whether the write's effect is there. A failing
        re-read propagates: nothing is re-sent without knowing.
    :param attempts: writes at most, the first one included.
    :return: what ``write`` returned, or ``None`` when the effect was confirmed by re-reading.
    :raises AtlassianApiError: the last failure, when the write failed for good.
    """

    def attempt() -> T | None:
        try:
            return write()
        except AtlassianApiError as exc:
            if not write_may_have_happened(exc):
                raise
            failure = exc
        # Whether the failed call reached Atlassian is unknown: look before writing again. A
        # failing look propagates as it is, never taken for a failed write to retry.
        if happened():
            return None
        raise _RetryableFailure(failure, "the write did not happen") from failure

    def give_up(state: RetryCallState) -> NoReturn:
        raise _RetryableFailure.of(state).error

    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        retry=retry_if_exception_type(_RetryableFailure),
        sleep=interruptible_sleep,
        retry_error_callback=give_up,
    )
    return retrying(attempt)
