"""`make bench`: time, API calls, memory and XCom of the cleanup pipeline against the sandbox.

Runs the real code path. The Atlassian sandbox runs as a separate process (so it does not share
the GIL with the code measured) with a 100,000-user org, a fixed per-request latency and its token
bucket rate limit (per credential, endpoint and method) switched on. Stages, in order:

1. ``extract_users``: the operator's own extraction (directory pages fetched ahead of the
   normalisation loop, Jira's user list read concurrently on its own connection) against the paging
   floor, pages x latency.
2. The same data read the per-user way many scripts use: the directory listed (with groups and
   roles) and one ``last-active-dates`` call per user, sequentially, at the same latency. Measured
   on a sample of pages and users, extrapolated linearly to the org, twice: with
   ``last-active-dates`` at its own limit (default 200/min, the figure open-source scripts
   document; Atlassian publishes none) and at the general limit every other endpoint has.
3. ``compute_inactivity`` (the planner), plan to XCom records, ``export_audit`` on the org.
4. ``apply_actions`` live: suspends through the enforcement engine and a fresh state store; the
   write rate against the sandbox's write limit, 429s and failed actions from its call log.
5. A full dry run of the ``atlassian_user_cleanup`` DAG with ``airflow dags test`` over the org at
   zero latency and no rate limit (fresh metadata DB, object-storage XCom backend as configured in
   tools/airflow_env.py), and the XCom bytes the run left in the metadata DB.
6. The planner alone on 1,000,000 synthetic users in a child process, each DAG file's parse time in
   a fresh process.
7. With ``--full-run-users N`` (``make bench SIZE=1m``: 1,000,000): the whole daily DAG in dry run
   against a sandbox of its own seeded with N users, zero latency, no rate limit: wall time, each
   task's peak RSS, the bytes the run wrote to object storage and the XCom bytes in the metadata
   DB (tools/bench_dry_run.py). ``--full-run-only`` leaves stages 1-6 out.

Prints a table and writes ``bench-results.json`` (see docs/performance.md). Figures vary by machine
and load; compare runs on the same machine only.

    python -m tools.bench [--users 100000] [--latency-ms 100] [--rate-limit 10]
                          [--last-active-rate 200] [--quick]
                          [--full-run-users 1000000 [--full-run-only]]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.airflow_env import REPO, connection_env
from tools.bench_children import child_parse, child_planner
from tools.bench_directories import directories_line, measure_directories
from tools.bench_dry_run import measure_full_run
from tools.bench_measure import AS_OF, SandboxProcess, peak_rss_mb, say
from tools.bench_report import FULL_RUN_KEYS, print_table, targets_met
from tools.bench_stages import (
    BenchRun,
    measure_apply,
    measure_baseline,
    measure_dry_run,
    measure_extraction,
    measure_parse,
    measure_plan_and_audit,
    measure_planner_alone,
)

RESULTS_FILE = REPO / "bench-results.json"
#: The per-user endpoint the baseline calls, as the sandbox's route spells it.
LAST_ACTIVE_ENDPOINT = "GET /admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="sandbox org size (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--latency-ms", type=float, default=100.0, help="sandbox latency per request (default 100)"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=10.0,
        help="sandbox token bucket, requests/s per credential, endpoint and method (default 10; 0 = off)",
    )
    parser.add_argument("--rate-limit-burst", type=int, default=20, help="token bucket size (default 20)")
    parser.add_argument(
        "--last-active-rate",
        type=float,
        default=200.0,
        help="requests/minute the sandbox allows on last-active-dates (default 200, as open-source scripts "
        "document; Atlassian publishes no number; 0 = the general --rate-limit)",
    )
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=200,
        help="users read the per-user way, at each of the two limits (default 200)",
    )
    parser.add_argument(
        "--baseline-pages", type=int, default=10, help="directory pages listed for the baseline (default 10)"
    )
    parser.add_argument(
        "--apply-users", type=int, default=600, help="users suspended live in the apply stage (default 600)"
    )
    parser.add_argument(
        "--planner-users", type=int, default=1_000_000, help="synthetic users for the planner alone"
    )
    parser.add_argument("--skip-parse", action="store_true", help="do not time the DAG files' parsing")
    parser.add_argument("--skip-dry-run", action="store_true", help="do not run the DAG dry run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 5000 users, 20 ms, 100k planner users, small samples (about 2 minutes)",
    )
    parser.add_argument(
        "--full-run-users",
        type=int,
        default=0,
        help="also run the whole daily DAG in dry run over a sandbox of this many users "
        "(make bench SIZE=1m: 1000000; default 0 = not run)",
    )
    parser.add_argument(
        "--full-run-only", action="store_true", help="only the full run (needs --full-run-users)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="where to write the JSON figures")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child-planner", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-parse", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The smallest org the sandbox seeds with every population (include/ is on sys.path by now).
    from atlassian_sandbox.seed import MIN_FULL_ORG

    if args.full_run_users < 0 or (args.full_run_users and args.full_run_users < MIN_FULL_ORG):
        parser.error(
            f"--full-run-users must be 0 (off) or at least {MIN_FULL_ORG}, not {args.full_run_users}"
        )
    if args.full_run_only and not args.full_run_users:
        parser.error("--full-run-only needs --full-run-users N (e.g. 1000000)")
    if args.quick:  # 20 ms calls run at up to 50/s: a limit of 10/s would make every stage rate-bound
        args.users, args.latency_ms, args.planner_users, args.rate_limit = 5_000, 20.0, 100_000, 50.0
        args.baseline_sample, args.baseline_pages, args.apply_users = 60, 5, 300
    return args


def measure_org(
    args: argparse.Namespace,
    workdir: Path,
    rate_limit: float | None,
    last_active_rate: float | None,
    results: list[dict[str, Any]],
    figures: dict[str, Any],
) -> list[dict[str, Any]]:
    """Stages 1-6 on the ``--users`` org (100,000 by default); returns the parse rows."""
    from atlassian_cleanup.decisions.policy import load_policy

    policy = load_policy(REPO / "include" / "policy.yaml")
    knobs: dict[str, Any] = {
        "users": args.users,
        "seed": args.seed,
        "as_of": AS_OF.date().isoformat(),
        "latency_ms": args.latency_ms,
        "call_log_max": max(200_000, args.users // 10),
        "rate_limit_enabled": bool(rate_limit),
    }
    if rate_limit:
        knobs.update(rate_limit_per_second=rate_limit, rate_limit_burst=args.rate_limit_burst)
    endpoint_limits = {LAST_ACTIVE_ENDPOINT: last_active_rate} if last_active_rate else {}
    knobs["rate_limit_endpoints"] = endpoint_limits
    say(f"starting the sandbox ({args.users} users) ...")
    with SandboxProcess(workdir, knobs) as sandbox:
        os.environ.update(connection_env(sandbox.info(), None))
        run = BenchRun(
            args, workdir, sandbox, rate_limit, last_active_rate, endpoint_limits, results, figures
        )
        extraction = measure_extraction(run)
        measure_baseline(run, extraction)
        measure_plan_and_audit(run, extraction.table, policy)
        measure_apply(run, extraction.table, policy)
        measure_directories(run)
        del extraction  # frees the user table before the dry run
        gc.collect()
        figures["sandbox_startup_seconds"] = round(sandbox.startup_seconds, 1)
        figures["sandbox_peak_rss_mb"] = sandbox.peak_rss_mb()
        if not args.skip_dry_run:
            measure_dry_run(run)

    measure_planner_alone(args, results, figures)
    parse = measure_parse(args, figures)
    is_100k = args.users == 100_000
    figures["dry_run_100k_seconds"] = (
        figures.get("dry_run_seconds") if is_100k and figures.get("dry_run_succeeded") else None
    )
    figures.setdefault("xcom_db_bytes_per_run", None)
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Airflow (imported by the hooks) must not create ~/airflow for a benchmark; task and hook log
    # lines (progress, summaries) would bury the table: warnings only.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="atlassian-cleanup-bench-"))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    if args.child_planner is not None:
        return child_planner(args.child_planner, args.seed)
    if args.child_parse is not None:
        return child_parse(args.child_parse)

    bench_started = time.perf_counter()
    # Task and hook log lines (progress, summaries) would bury the table: warnings only.
    logging.getLogger("airflow").setLevel(logging.WARNING)
    logging.getLogger("atlassian_cleanup").setLevel(logging.WARNING)

    rate_limit = args.rate_limit or None
    # The per-user endpoint's own limit (the sandbox's bucket is per endpoint and method anyway).
    last_active_rate = args.last_active_rate / 60 if rate_limit and args.last_active_rate > 0 else None
    endpoint_limits = {LAST_ACTIVE_ENDPOINT: last_active_rate} if last_active_rate else {}
    results: list[dict[str, Any]] = []
    figures: dict[str, Any] = dict.fromkeys(FULL_RUN_KEYS)
    parse: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="atlassian-cleanup-bench-") as tmp:
        workdir = Path(tmp)
        if not args.full_run_only:
            parse = measure_org(args, workdir, rate_limit, last_active_rate, results, figures)
        if args.full_run_users:
            measure_full_run(args, workdir, figures)
    figures["bench_seconds"] = round(time.perf_counter() - bench_started, 1)

    for row in results:
        row.pop("_calls", None)
    targets = targets_met(figures)
    output = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {
            "users": args.users,
            "seed": args.seed,
            "latency_ms": args.latency_ms,
            "rate_limit_per_second": rate_limit,
            "rate_limit_burst": args.rate_limit_burst if rate_limit else None,
            "rate_limit_endpoints": endpoint_limits,
            "baseline_sample": args.baseline_sample,
            "baseline_pages": args.baseline_pages,
            "apply_users": args.apply_users,
            "planner_users": args.planner_users,
            "full_run_users": args.full_run_users or None,
            "full_run_only": args.full_run_only,
        },
        **figures,
        "targets_met": targets,
        "stages": results,
        "process_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    args.results.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print_table(args, output, results, parse)
    print(directories_line(output) or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
