"""Bench stage: an organisation with two directories, read concurrently versus one after the other.

The sandbox gets a second directory (``idp_directory_share``: that share of the users is also in an
IdP-synced directory), then the Admin hook lists the users three ways at the bench's latency:

* each directory alone, one after the other (what a one-directory-at-a-time client takes);
* both at once, one cursor and connection per directory, merged (what ``extract_users`` does).

With the sandbox's rate limit on, both directories' searches share one token bucket (the same
credential, endpoint and method), as they would at Atlassian, so the figure is also measured with
the limit off: that one shows what concurrency alone buys. The second directory is removed
afterwards, so later stages see the org as before.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tools.bench_measure import say

#: Share of the users also in the second directory.
IDP_SHARE = 0.5


@contextmanager
def _all_directories() -> Iterator[None]:
    """The Admin connection switched to ``directory_id: "*"`` for the stage's duration."""
    name = "AIRFLOW_CONN_ATLASSIAN_ADMIN"
    before = os.environ[name]
    conn = json.loads(before)
    conn["extra"] = {**conn.get("extra", {}), "directory_id": "*"}
    os.environ[name] = json.dumps(conn)
    try:
        yield
    finally:
        os.environ[name] = before


def _timed(read: Any) -> tuple[float, int]:
    started = time.perf_counter()
    count = read()
    return time.perf_counter() - started, count


def _read_three_ways() -> dict[str, Any]:
    from atlassian_cleanup.client.hooks import AtlassianAdminHook

    def users(directory_id: str | None) -> int:
        with AtlassianAdminHook() as hook:
            return sum(len(page) for page in hook.iter_directory_user_pages(directory_id=directory_id))

    with AtlassianAdminHook() as hook:
        directories = hook.directory_ids
    one_by_one = [_timed(lambda d=d: users(d)) for d in directories]
    merged_seconds, merged_users = _timed(lambda: users(None))
    sequential = sum(seconds for seconds, _ in one_by_one)
    return {
        "directories": len(directories),
        "listed_per_directory": [count for _, count in one_by_one],
        "merged_users": merged_users,
        "sequential_seconds": round(sequential, 3),
        "concurrent_seconds": round(merged_seconds, 3),
        "speedup": round(sequential / merged_seconds, 2) if merged_seconds else None,
    }


def measure_directories(run: Any) -> None:
    """Add ``directories_*`` figures (and a printed line's worth) to the run."""
    sandbox = run.sandbox
    say("two directories: read one after the other vs concurrently ...")
    sandbox.configure(idp_directory_share=IDP_SHARE)
    try:
        with _all_directories():
            limited = _read_three_ways()
            unlimited = None
            if run.rate_limit:
                sandbox.configure(rate_limit_enabled=False)
                try:
                    unlimited = _read_three_ways()
                finally:
                    sandbox.configure(rate_limit_enabled=True)
    finally:
        sandbox.configure(idp_directory_share=0.0)
    run.figures.update(
        directories_users=limited["listed_per_directory"],
        directories_merged_users=limited["merged_users"],
        directories_sequential_seconds=limited["sequential_seconds"],
        directories_concurrent_seconds=limited["concurrent_seconds"],
        directories_speedup=limited["speedup"],
        directories_unlimited_sequential_seconds=unlimited["sequential_seconds"] if unlimited else None,
        directories_unlimited_concurrent_seconds=unlimited["concurrent_seconds"] if unlimited else None,
        directories_unlimited_speedup=unlimited["speedup"] if unlimited else None,
    )


def directories_line(out: dict[str, Any]) -> str | None:
    """The printed table's line for this stage (None when it did not run)."""
    if out.get("directories_speedup") is None:
        return None
    line = (
        f"Two directories ({' + '.join(str(n) for n in out['directories_users'])} users listed, "
        f"{out['directories_merged_users']} accounts merged): one after the other "
        f"{out['directories_sequential_seconds']} s, concurrently {out['directories_concurrent_seconds']} s "
        f"= {out['directories_speedup']}x"
    )
    if out.get("directories_unlimited_speedup") is not None:
        line += (
            f" (both searches share the rate limit's bucket); without the rate limit "
            f"{out['directories_unlimited_sequential_seconds']} s vs "
            f"{out['directories_unlimited_concurrent_seconds']} s = {out['directories_unlimited_speedup']}x"
        )
    return line
