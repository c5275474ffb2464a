"""Progress lines for long loops: ``done/total, rate, ETA`` at most every few seconds.

Admins watch task logs during a 100k-user extraction; one line every ``interval`` seconds tells them
the run is alive and when it will finish, without flooding the log with a line per page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping


class ProgressLog:
    def __init__(
        self,
        log: logging.Logger,
        label: str,
        *,
        total: int | None = None,
        unit: str = "users",
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._label = label
        self._total = total
        self._unit = unit
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_logged = self._started
        self.done = 0

    @property
    def total(self) -> int | None:
        """The expected count (None when unknown)."""
        return self._total

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = self._clock()
        if not force and now - self._last_logged < self._interval:
            return
        self._last_logged = now
        self._log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else self._clock()) - self._started, 1e-9)
        rate = self.done / elapsed
        if self._total:
            remaining = max(self._total - self.done, 0)
            eta = f"{remaining / rate:.0f}s" if rate > 0 else "unknown"
            return (
                f"{self._label}: {self.done}/{self._total} {self._unit} "
                f"({100 * self.done / self._total:.0f}%), {rate:.0f} {self._unit}/s, ETA {eta}"
            )
        return f"{self._label}: {self.done} {self._unit}, {rate:.0f} {self._unit}/s"


def counts_in_words(counts: Mapping[str, int], *, none: str = "none") -> str:
    """``{"active": 270, "suspended": 6, "closed": 0}`` as ``active 270, suspended 6``.

    For the summary lines admins read in task logs: largest first (then by name), zero counts left
    out, never a Python dict.
    """
    items = sorted(((str(k), int(v)) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name} {count}" for name, count in items) or none
