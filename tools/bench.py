"""`make bench`: time, API calls and memory of the cleanup pipeline's stages against the sandbox.

Runs the real code path outside Airflow's scheduler. The Atlassian sandbox runs as a separate
process (so it does not share the GIL with the code being measured) with a per-request latency
and, optionally, a rate limit. Against it the Admin API hook pages through the seeded org over
HTTP, users are normalised, the planner plans, the plan becomes XCom records and the audit CSV is
written. Then: the per-user baseline (one ``last-active-dates`` call per user, on a sample,
extrapolated to the org), the planner alone on 1M synthetic users in a child process, and the
parse time of each DAG file in a fresh process. Prints a table and writes ``bench-results.json``
(see docs/performance.md). Figures vary by machine; compare runs on the same machine only.

    python -m tools.bench --users 100000 --latency-ms 100 [--rate-limit 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tools.airflow_env import REPO, airflow_env, connection_env

sys.path[:0] = [str(REPO / "plugins"), str(REPO / "include")]

AS_OF = datetime(2026, 11, 26, tzinfo=UTC)
RESULTS_FILE = REPO / "bench-results.json"
SANDBOX_START_TIMEOUT_S = 900

#: Targets (docs/performance.md); ``None`` in the results means "not measured".
TARGET_EXTRACTION_FLOOR_RATIO = 1.2
TARGET_BASELINE_SPEEDUP = 100.0
TARGET_PLANNER_1M_SECONDS = 2.0
TARGET_PLANNER_1M_PEAK_RSS_MB = 1536.0
TARGET_PARSE_SECONDS = 0.2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_peak_rss_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of another live process, from /proc (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# -- the sandbox as a separate process ---------------------------------------------------------------


class SandboxProcess:
    """``python -m atlassian_sandbox`` in a child process, with a tiny client for ``/_sim``."""

    def __init__(self, workdir: Path, knobs: dict[str, Any]) -> None:
        self.workdir = workdir
        self.knobs = knobs
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.startup_seconds = 0.0
        self._session: Any = None

    def __enter__(self) -> SandboxProcess:
        import requests

        config = self.workdir / "knobs.json"
        config.write_text(json.dumps(self.knobs), encoding="utf-8")
        url_file = self.workdir / "sandbox.url"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")]),
        }
        started = time.perf_counter()
        self._log = (self.workdir / "sandbox.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "atlassian_sandbox",
                "--port",
                "0",
                "--url-file",
                str(url_file),
                "--config",
                str(config),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        while not url_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sandbox exited with {self.proc.returncode}; see {self.workdir / 'sandbox.log'}"
                )
            if time.perf_counter() - started > SANDBOX_START_TIMEOUT_S:
                raise RuntimeError("sandbox did not start in time")
            time.sleep(0.1)
        self.url = url_file.read_text(encoding="utf-8").strip()
        self._session = requests.Session()
        self._session.get(f"{self.url}/_sim/health", timeout=30).raise_for_status()
        self.startup_seconds = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def info(self) -> dict[str, Any]:
        response = self._session.get(f"{self.url}/_sim/info", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def last_seq(self) -> int:
        response = self._session.get(f"{self.url}/_sim/calls", params={"since": 2**62}, timeout=60)
        response.raise_for_status()
        return int(response.json()["last_seq"])

    def calls_since(self, seq: int) -> list[dict[str, Any]]:
        response = self._session.get(f"{self.url}/_sim/calls", params={"since": seq}, timeout=120)
        response.raise_for_status()
        return list(response.json()["calls"])

    def peak_rss_mb(self) -> float | None:
        return _proc_peak_rss_mb(self.proc.pid) if self.proc else None


# -- stages --------------------------------------------------------------------------------------------


def _stage(
    name: str,
    count: int,
    func: Callable[[], Any],
    results: list[dict[str, Any]],
    sandbox: SandboxProcess | None = None,
) -> Any:
    # Peak RSS only grows, so its increase during a stage is the memory that stage needed beyond
    # what earlier stages already used (tracemalloc would slow pandas code several-fold).
    gc.collect()
    seq = sandbox.last_seq() if sandbox else None
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    value = func()
    elapsed = time.perf_counter() - started
    row: dict[str, Any] = {
        "stage": name,
        "users": count,
        "api_calls": None,
        "api_429": None,
        "seconds": round(elapsed, 3),
        "users_per_second": round(count / elapsed) if elapsed else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_rss_growth_mb": round(_peak_rss_mb() - rss_before, 1),
    }
    if sandbox is not None and seq is not None:
        calls = sandbox.calls_since(seq)
        row["api_calls"] = len(calls)
        row["api_429"] = sum(1 for call in calls if call.get("status") == 429)
        row["_calls"] = calls
    results.append(row)
    return value


# -- child: the planner alone on N synthetic users ------------------------------------------------------


def _synthetic_users(count: int, seed: int) -> list[dict[str, Any]]:
    """UserRecords shaped like a real org's, built cheaply (no HTTP, no seed generator)."""
    rng = random.Random(seed)
    groups = [f"team-{i}" for i in range(40)]
    users: list[dict[str, Any]] = []
    for i in range(count):
        roll = rng.random()
        account_type = "app" if roll < 0.01 else "customer" if roll < 0.05 else "atlassian"
        product_access: dict[str, str | None] = {}
        for product, share in (("jira", 0.9), ("confluence", 0.7), ("jsm", 0.15)):
            if rng.random() < share:
                if rng.random() < 0.05:
                    product_access[product] = None
                else:
                    when = AS_OF - timedelta(days=rng.randint(0, 900), seconds=rng.randint(0, 86_399))
                    product_access[product] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        active = [value for value in product_access.values() if value]
        email = f"user{i}@acme.example" if rng.random() < 0.97 else None
        user_groups = sorted(rng.sample(groups, rng.randint(0, 4)))
        users.append(
            {
                "account_id": f"712020:{i:08x}-bench",
                "account_type": account_type,
                "name": f"User {i}",
                "email": email,
                "email_domain": "acme.example" if email else None,
                "status": "active" if rng.random() < 0.95 else "suspended",
                "account_status": "active",
                "membership_status": "active",
                "claim_status": "managed" if rng.random() < 0.9 else "unmanaged",
                "added_to_org": (AS_OF - timedelta(days=rng.randint(30, 3000))).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "platform_roles": [],
                "groups": user_groups,
                "group_ids": [f"gid-{name}" for name in user_groups],
                "product_access": product_access,
                "last_active": max(active) if active else None,
                "time_zone": None,
            }
        )
    return users


def _child_planner(count: int, seed: int) -> int:
    from atlassian_cleanup.planner import plan_actions
    from atlassian_cleanup.policy import load_policy

    policy = load_policy(REPO / "include" / "policy.yaml")
    started = time.perf_counter()
    users = _synthetic_users(count, seed)
    built = time.perf_counter() - started
    gc.collect()
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    plan = plan_actions(users, policy, AS_OF)
    seconds = time.perf_counter() - started
    out = {
        "users": count,
        "rows": len(plan),
        "build_seconds": round(built, 3),
        "seconds": round(seconds, 3),
        "peak_rss_before_plan_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    print(json.dumps(out))
    return 0


# -- child: parse one DAG file in a fresh process ----------------------------------------------------------


def _child_parse(path: str) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="atlassian-cleanup-bench-parse-"))
    for name in ("airflow", "audit", "xcom"):
        (scratch / name).mkdir()
    os.environ.update(
        airflow_env(scratch / "airflow", audit_dir=scratch / "audit", xcom_dir=scratch / "xcom")
    )
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    import_airflow = time.perf_counter() - started
    durations = []
    for _ in range(2):  # first: cold (the file's own imports), second: warm (modules cached)
        started = time.perf_counter()
        bag = DagBag(dag_folder=path, safe_mode=False)
        wall = time.perf_counter() - started
        stat_seconds = sum(stat.duration.total_seconds() for stat in bag.dagbag_stats)
        durations.append({"stats_seconds": round(stat_seconds, 3), "wall_seconds": round(wall, 3)})
        if bag.import_errors:
            print(json.dumps({"file": path, "error": str(bag.import_errors)}))
            return 1
    print(
        json.dumps(
            {
                "file": Path(path).name,
                "airflow_import_seconds": round(import_airflow, 3),
                "cold_seconds": durations[0]["stats_seconds"],
                "warm_seconds": durations[1]["stats_seconds"],
                "dags": len(bag.dags),
            }
        )
    )
    return 0


def _run_child(args: list[str], timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"child {args} failed ({proc.returncode}): {proc.stderr[-2000:]}{proc.stdout[-2000:]}"
        )
    return dict(json.loads(lines[-1]))


# -- main ---------------------------------------------------------------------------------------------------


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="sandbox org size (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--latency-ms", type=float, default=100.0, help="sandbox latency per request (default 100)"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="sandbox rate limit, requests/s per endpoint (default: off)",
    )
    parser.add_argument(
        "--rate-limit-burst", type=int, default=20, help="token bucket size with --rate-limit"
    )
    parser.add_argument(
        "--baseline-sample", type=int, default=300, help="users read the per-user way (default 300)"
    )
    parser.add_argument(
        "--planner-users", type=int, default=1_000_000, help="synthetic users for the planner alone"
    )
    parser.add_argument("--skip-parse", action="store_true", help="do not time the DAG files' parsing")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="where to write the JSON figures")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child-planner", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-parse", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Airflow (imported by the hooks) must not create ~/airflow for a benchmark.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="atlassian-cleanup-bench-"))
    if args.child_planner is not None:
        return _child_planner(args.child_planner, args.seed)
    if args.child_parse is not None:
        return _child_parse(args.child_parse)

    from atlassian_cleanup.audit import write_audit
    from atlassian_cleanup.hooks import AtlassianAdminHook
    from atlassian_cleanup.planner import plan_actions, plan_to_records
    from atlassian_cleanup.policy import load_policy
    from atlassian_cleanup.records import user_record_from_v2

    policy = load_policy(REPO / "include" / "policy.yaml")
    knobs: dict[str, Any] = {
        "users": args.users,
        "seed": args.seed,
        "as_of": AS_OF.date().isoformat(),
        "latency_ms": args.latency_ms,
        # The per-user baseline makes one logged call per sampled user; keep the whole run logged.
        "call_log_max": max(100_000, args.users // 50 + args.baseline_sample * 4 + 1000),
    }
    if args.rate_limit:
        knobs.update(
            rate_limit_enabled=True,
            rate_limit_per_second=args.rate_limit,
            rate_limit_burst=args.rate_limit_burst,
        )
    results: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="atlassian-cleanup-bench-") as tmp,
        SandboxProcess(Path(tmp), knobs) as sandbox,
    ):
        os.environ.update(connection_env(sandbox.info(), None))

        def extract() -> list[dict[str, Any]]:
            with AtlassianAdminHook() as hook:
                return [dict(user_record_from_v2(raw)) for raw in hook.iter_directory_users()]

        users = _stage("extract_users (v2 search, 100/page)", args.users, extract, results, sandbox)
        extraction = results[-1]
        extraction["users"] = len(users)  # the directory search returns fewer than the org (bots, customers)
        pages = sum(1 for call in extraction["_calls"] if str(call.get("path", "")).endswith("/users/search"))
        floor = pages * args.latency_ms / 1000 if args.latency_ms else None
        figures.update(
            directory_users=len(users),
            extraction_seconds=extraction["seconds"],
            extraction_pages=pages,
            extraction_api_calls=extraction["api_calls"],
            extraction_429s=extraction["api_429"],
            extraction_floor_seconds=round(floor, 3) if floor is not None else None,
            extraction_floor_ratio=_ratio(extraction["seconds"], floor),
            extraction_peak_rss_mb=extraction["peak_rss_mb"],
        )

        # Per-user baseline: what many scripts do, one last-active-dates call per user. A sample of
        # the org spread evenly over the directory order; extrapolated linearly to the org size.
        sample_size = min(args.baseline_sample, len(users))
        step = max(1, len(users) // sample_size) if sample_size else 1
        sample = [user["account_id"] for user in users[::step][:sample_size]]

        def per_user() -> list[dict[str, Any]]:
            with AtlassianAdminHook() as hook:
                return [hook.get_last_active_dates(account_id) for account_id in sample]

        if sample:
            _stage(
                f"baseline: last-active-dates per user (sample {len(sample)})",
                len(sample),
                per_user,
                results,
                sandbox,
            )
            baseline = results[-1]
            per_user_seconds = baseline["seconds"] / len(sample)
            extrapolated = per_user_seconds * len(users)
            figures.update(
                baseline_sample=len(sample),
                baseline_sample_seconds=baseline["seconds"],
                baseline_sample_api_calls=baseline["api_calls"],
                baseline_sample_429s=baseline["api_429"],
                baseline_seconds_per_user=round(per_user_seconds, 4),
                baseline_extrapolated_seconds=round(extrapolated, 1),
                baseline_extrapolated_api_calls=round(baseline["api_calls"] / len(sample) * len(users)),
                baseline_speedup=_ratio(extrapolated, extraction["seconds"]),
            )
        figures["sandbox_startup_seconds"] = round(sandbox.startup_seconds, 1)
        figures["sandbox_peak_rss_mb"] = sandbox.peak_rss_mb()

    plan = _stage(
        "compute_inactivity (planner)", len(users), lambda: plan_actions(users, policy, AS_OF), results
    )
    records = _stage("plan to XCom records", len(users), lambda: plan_to_records(plan), results)
    xcom_bytes = len(json.dumps(records))
    with tempfile.TemporaryDirectory() as tmp:
        _stage(
            "export_audit (CSV + SHA-256)",
            len(records),
            lambda: write_audit(
                records, Path(tmp), run_id="bench", as_of=AS_OF.date().isoformat(), mode="dry_run"
            ),
            results,
        )
    figures["planner_org_seconds"] = results[-3]["seconds"]
    figures["xcom_plan_json_bytes"] = xcom_bytes
    gc.collect()

    planner_1m = _run_child(["--child-planner", str(args.planner_users), "--seed", str(args.seed)])
    results.append(
        {
            "stage": f"planner alone, {args.planner_users:,} synthetic users (child)",
            "users": args.planner_users,
            "api_calls": None,
            "api_429": None,
            "seconds": planner_1m["seconds"],
            "users_per_second": round(args.planner_users / planner_1m["seconds"])
            if planner_1m["seconds"]
            else None,
            "peak_rss_mb": planner_1m["peak_rss_mb"],
            "peak_rss_growth_mb": round(planner_1m["peak_rss_mb"] - planner_1m["peak_rss_before_plan_mb"], 1),
        }
    )
    is_1m = args.planner_users == 1_000_000
    figures.update(
        planner_synthetic_users=args.planner_users,
        planner_1m_seconds=planner_1m["seconds"] if is_1m else None,
        planner_1m_peak_rss_mb=planner_1m["peak_rss_mb"] if is_1m else None,
        planner_synthetic_seconds=planner_1m["seconds"],
        planner_synthetic_peak_rss_mb=planner_1m["peak_rss_mb"],
        planner_synthetic_input_rss_mb=planner_1m["peak_rss_before_plan_mb"],
    )

    parse: list[dict[str, Any]] = []
    if not args.skip_parse:
        parse = [_run_child(["--child-parse", str(path)]) for path in sorted((REPO / "dags").glob("*.py"))]
    figures["parse"] = parse or None
    figures["parse_seconds_max"] = max((row["cold_seconds"] for row in parse), default=None)
    figures["parse_warm_seconds_max"] = max((row["warm_seconds"] for row in parse), default=None)
    # Not measured by this script (yet): never invent them.
    figures.update(apply_rate_share=None, xcom_db_bytes_per_run=None, dry_run_100k_seconds=None)

    for row in results:
        row.pop("_calls", None)
    targets = {
        "extraction_floor_ratio": _met(
            figures["extraction_floor_ratio"], TARGET_EXTRACTION_FLOOR_RATIO, "<="
        ),
        "baseline_speedup": _met(figures.get("baseline_speedup"), TARGET_BASELINE_SPEEDUP, ">="),
        "planner_1m_seconds": _met(figures["planner_1m_seconds"], TARGET_PLANNER_1M_SECONDS, "<"),
        "planner_1m_peak_rss_mb": _met(figures["planner_1m_peak_rss_mb"], TARGET_PLANNER_1M_PEAK_RSS_MB, "<"),
        "parse_seconds_max": _met(figures["parse_seconds_max"], TARGET_PARSE_SECONDS, "<"),
    }
    output = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {
            "users": args.users,
            "seed": args.seed,
            "latency_ms": args.latency_ms,
            "rate_limit_per_second": args.rate_limit,
            "rate_limit_burst": args.rate_limit_burst if args.rate_limit else None,
            "baseline_sample": args.baseline_sample,
            "planner_users": args.planner_users,
        },
        **{key: figures.get(key) for key in figures},
        "targets_met": targets,
        "stages": results,
        "process_peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    args.results.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    _print_table(args, output, results, parse)
    return 0


def _met(value: float | None, target: float, op: str) -> bool | None:
    if value is None:
        return None
    return {"<": value < target, "<=": value <= target, ">=": value >= target}[op]


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _print_table(
    args: argparse.Namespace, out: dict[str, Any], rows: list[dict[str, Any]], parse: list[dict[str, Any]]
) -> None:
    limit = f"{args.rate_limit:g} req/s (burst {args.rate_limit_burst})" if args.rate_limit else "off"
    print(
        f"Sandbox org: {args.users} users (seed {args.seed}), separate process, "
        f"latency {args.latency_ms:g} ms, "
        f"rate limit {limit}; started in {out['sandbox_startup_seconds']}s, "
        f"peak RSS {_fmt(out['sandbox_peak_rss_mb'])} MB"
    )
    print(
        f"{'stage':58} {'users':>9} {'API calls':>9} {'429s':>5} {'seconds':>9} {'users/s':>9} "
        f"{'peak RSS MB':>11} {'+MB':>7}"
    )
    for row in rows:
        print(
            f"{row['stage']:58} {row['users']:>9} {_fmt(row['api_calls']):>9} {_fmt(row['api_429']):>5} "
            f"{row['seconds']:>9.3f} {_fmt(row['users_per_second']):>9} "
            f"{row['peak_rss_mb']:>11.1f} {row['peak_rss_growth_mb']:>7.1f}"
        )
    print()
    print(
        f"Extraction: {out['extraction_pages']} pages x {args.latency_ms:g} ms = paging floor "
        f"{_fmt(out['extraction_floor_seconds'])} s; measured {out['extraction_seconds']} s "
        f"= {_fmt(out['extraction_floor_ratio'])}x the floor (target <= {TARGET_EXTRACTION_FLOOR_RATIO}x)"
    )
    if out.get("baseline_sample"):
        print(
            f"Per-user baseline: {out['baseline_sample']} users measured, "
            f"{out['baseline_seconds_per_user']} s/user; "
            f"EXTRAPOLATED to {out['directory_users']} users: {out['baseline_extrapolated_seconds']} s, "
            f"~{out['baseline_extrapolated_api_calls']} API calls; speed-up of paged extraction "
            f"{_fmt(out['baseline_speedup'])}x (target >= {TARGET_BASELINE_SPEEDUP:g}x)"
        )
    print(
        f"Planner alone: {out['planner_synthetic_users']:,} synthetic users "
        f"in {out['planner_synthetic_seconds']} s, "
        f"child peak RSS {out['planner_synthetic_peak_rss_mb']} MB "
        f"(input alone {out['planner_synthetic_input_rss_mb']} MB) "
        f"(targets < {TARGET_PLANNER_1M_SECONDS:g} s, < {TARGET_PLANNER_1M_PEAK_RSS_MB:g} MB at 1M)"
    )
    for row in parse:
        print(
            f"DAG parse {row['file']}: {row['cold_seconds']} s cold (fresh process, airflow pre-imported), "
            f"{row['warm_seconds']} s warm; {row['dags']} DAG(s) (target < {TARGET_PARSE_SECONDS} s)"
        )
    print(
        f"Plan as XCom JSON: {out['xcom_plan_json_bytes'] / 2**20:.1f} MiB "
        "(spills to object storage above 64 KiB)"
    )
    print(f"Bench process peak RSS: {out['process_peak_rss_mb']:.0f} MB")
    print("Targets met: " + ", ".join(f"{key}={_fmt(value)}" for key, value in out["targets_met"].items()))
    print(f"Figures written to {args.results}")


if __name__ == "__main__":
    sys.exit(main())
