"""Per-endpoint pacing, on a simulated clock (no real waiting)."""

from __future__ import annotations

from atlassian_cleanup.client.retry import RatePacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def drive(pacer: RatePacer, clock: Clock, *, calls: int, refill: float, burst: int, spacing: float) -> int:
    """Calls every ``spacing`` s (at least) against a token bucket; returns the 429s it would get."""
    tokens, throttled, last = float(burst), 0, clock.now
    for _ in range(calls):
        pacer.wait()
        clock.now += spacing
        tokens = min(burst, tokens + (clock.now - last) * refill)
        last = clock.now
        if tokens >= 1:
            tokens -= 1
            pacer.observe(int(tokens), burst, ok=True)
        else:
            throttled += 1
            pacer.observe(0, burst, ok=False)
    return throttled


def test_without_rate_limit_headers_nothing_is_paced() -> None:
    clock = Clock()
    pacer = RatePacer(clock=clock, sleep=clock.sleep)
    for _ in range(50):
        pacer.wait()
        clock.now += 0.01
        pacer.observe(None, None, ok=True)
    assert pacer.interval == 0.0
    assert clock.slept == []


def test_a_fast_client_settles_at_the_refill_rate_without_running_dry() -> None:
    clock = Clock()
    pacer = RatePacer(clock=clock, sleep=clock.sleep)
    # 40 calls/s wanted against a bucket of 20 refilling at 10/s.
    throttled = drive(pacer, clock, calls=400, refill=10.0, burst=20, spacing=0.025)
    assert pacer.refill is not None
    assert 8.0 < pacer.refill < 12.0
    assert 0.08 < pacer.interval < 0.13
    assert throttled <= 3  # at most while the rate is first measured


def test_plenty_of_budget_means_no_pacing() -> None:
    clock = Clock()
    pacer = RatePacer(clock=clock, sleep=clock.sleep)
    # 5 calls/s against a bucket refilling at 10/s: it stays full.
    drive(pacer, clock, calls=100, refill=10.0, burst=20, spacing=0.2)
    assert pacer.interval == 0.0
