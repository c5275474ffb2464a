"""`make bench`: time and memory of the cleanup pipeline's stages against the sandbox.

Runs the real code path outside Airflow's scheduler: the Admin API hook pages through a seeded
sandbox org over HTTP, users are normalised, the planner plans, the audit CSV is written. Prints
wall time, throughput and peak memory per stage. Figures vary by machine; compare runs on the same
machine only.

    python -m tools.bench --users 10000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.airflow_env import REPO, connection_env

sys.path[:0] = [str(REPO / "plugins"), str(REPO / "include")]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stage(name: str, count: int, func: Callable[[], Any], results: list[dict[str, Any]]) -> Any:
    # Peak RSS only grows, so its increase during a stage is the memory that stage needed beyond
    # what earlier stages already used (tracemalloc would slow pandas code several-fold).
    gc.collect()
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    value = func()
    elapsed = time.perf_counter() - started
    results.append(
        {
            "stage": name,
            "users": count,
            "seconds": round(elapsed, 3),
            "users_per_second": round(count / elapsed) if elapsed else None,
            "peak_rss_growth_mb": round(_peak_rss_mb() - rss_before, 1),
        }
    )
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    # Airflow (imported by the hooks) must not create ~/airflow for a benchmark.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="atlassian-cleanup-bench-"))

    from atlassian_cleanup.audit import write_audit
    from atlassian_cleanup.hooks import AtlassianAdminHook
    from atlassian_cleanup.planner import plan_actions, plan_to_records
    from atlassian_cleanup.policy import load_policy
    from atlassian_cleanup.records import user_record_from_v2
    from atlassian_sandbox import SandboxConfig, SandboxServer

    as_of = datetime(2026, 11, 26, tzinfo=UTC)
    policy = load_policy(REPO / "include" / "policy.yaml")
    results: list[dict[str, Any]] = []
    generate_started = time.perf_counter()
    with SandboxServer(SandboxConfig(users=args.users, seed=args.seed, as_of=as_of.date())) as sandbox:
        generated = time.perf_counter() - generate_started
        os.environ.update(connection_env(sandbox.info, None))

        def extract() -> list[dict[str, Any]]:
            with AtlassianAdminHook() as hook:
                return [dict(user_record_from_v2(raw)) for raw in hook.iter_directory_users()]

        users = _stage("extract_users (HTTP, v2 search 100/page)", args.users, extract, results)
    plan = _stage(
        "compute_inactivity (planner)", len(users), lambda: plan_actions(users, policy, as_of), results
    )
    records = _stage("plan to XCom records", len(users), lambda: plan_to_records(plan), results)
    xcom_bytes = len(json.dumps(records))
    with tempfile.TemporaryDirectory() as tmp:
        _stage(
            "export_audit (CSV + SHA-256)",
            len(records),
            lambda: write_audit(records, Path(tmp), run_id="bench", as_of="2026-11-26", mode="dry_run"),
            results,
        )

    if args.json:
        print(json.dumps({"users": args.users, "stages": results, "xcom_plan_bytes": xcom_bytes}, indent=2))
        return 0
    print(f"Sandbox org: {args.users} users (seed {args.seed}), generated in {generated:.1f}s")
    print(f"{'stage':45} {'seconds':>9} {'users/s':>9} {'+peak RSS MB':>13}")
    for row in results:
        rate = row["users_per_second"] or 0
        print(f"{row['stage']:45} {row['seconds']:>9.3f} {rate:>9} {row['peak_rss_growth_mb']:>13}")
    print(f"Plan as XCom JSON: {xcom_bytes / 2**20:.1f} MiB (spills to object storage above 64 KiB)")
    print(f"Process peak RSS: {_peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
