"""Rate limiting and chaos injection.

Jira documents its burst limiter as a token bucket per tenant x endpoint x HTTP method (§7.2);
the Admin API publishes no numbers but answers with the same headers. One limiter models both,
keyed by (credential, path template, method), so a client that hammers one endpoint is throttled
there while its other calls still pass, as on the real service.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from atlassian_sandbox.config import SandboxConfig


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until one token is available (0 when allowed)


class TokenBucketLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}  # key -> (tokens, last)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def take(self, key: tuple[str, str, str], rate: float, burst: int) -> Decision:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                tokens -= 1.0
                self._buckets[key] = (tokens, now)
                return Decision(True, burst, int(tokens), 0.0)
            self._buckets[key] = (tokens, now)
            return Decision(False, burst, 0, (1.0 - tokens) / rate)


def rate_limit_headers(family: str, decision: Decision, config: SandboxConfig) -> dict[str, str]:
    """Headers for a 429 in the shape each API family uses (§7.1, §7.2)."""
    retry_after = max(1, math.ceil(decision.retry_after))
    reset_at = datetime.now(UTC) + timedelta(seconds=decision.retry_after)
    headers = {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": "0"}
    if family in ("admin", "usermgmt"):
        if config.admin_reset_format == "minute":
            # Observed Admin form has minute precision (2023-10-11T10:15Z); round up so a client
            # that sleeps until the reset never wakes early.
            if reset_at.second or reset_at.microsecond:
                reset_at = reset_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
            headers["X-RateLimit-Reset"] = reset_at.strftime("%Y-%m-%dT%H:%MZ")
        else:
            headers["X-RateLimit-Reset"] = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if config.admin_retry_after:
            headers["Retry-After"] = str(retry_after)
    else:
        headers["Retry-After"] = str(retry_after)
        headers["X-RateLimit-Reset"] = reset_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        headers["RateLimit-Reason"] = "jira-burst-based"
    return headers


def success_rate_headers(family: str, decision: Decision) -> dict[str, str]:
    headers = {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining)}
    if family in ("jira", "jsm") and decision.remaining < 0.2 * decision.limit:
        headers["X-RateLimit-NearLimit"] = "true"
    return headers


class Chaos:
    """Seeded random fault injection; the same seed and call order give the same faults."""

    KINDS = ("429", "503", "500", "drop_before", "drop_after")

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._seed = seed
            self._rng = random.Random(seed)

    @property
    def seed(self) -> int:
        return self._seed

    def roll(self, config: SandboxConfig, method: str, path: str) -> str | None:
        probabilities = (
            config.chaos_429,
            config.chaos_503,
            config.chaos_500,
            config.chaos_drop_before,
            config.chaos_drop_after,
        )
        if not any(probabilities):
            return None
        if config.chaos_methods and method.upper() not in config.chaos_methods:
            return None
        if config.chaos_path_regex and not re.search(config.chaos_path_regex, path):
            return None
        with self._lock:
            draw = self._rng.random()
        threshold = 0.0
        for kind, probability in zip(self.KINDS, probabilities, strict=True):
            threshold += probability
            if draw < threshold:
                return kind
        return None
