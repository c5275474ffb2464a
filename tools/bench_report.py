"""The bench's targets (docs/performance.md), which of them a run met, and the printed table."""

from __future__ import annotations

import argparse
from typing import Any

from tools.bench_dry_run import FULL_RUN_1M
from tools.bench_measure import DAG_ID

#: Targets (docs/performance.md); ``None`` in the results means "not measured".
TARGET_EXTRACTION_FLOOR_RATIO = 1.2
TARGET_BASELINE_SPEEDUP = 100.0
TARGET_APPLY_RATE_SHARE = 0.9
TARGET_PLANNER_1M_SECONDS = 2.0
TARGET_PLANNER_1M_PEAK_RSS_MB = 1536.0
TARGET_PARSE_SECONDS = 0.2
TARGET_XCOM_DB_BYTES = 16 * 1024
TARGET_DRY_RUN_SECONDS = 180.0
#: The whole daily DAG in dry run over 1,000,000 users (``make bench SIZE=1m``).
TARGET_DRY_RUN_1M_SECONDS = 600.0
TARGET_TASK_PEAK_RSS_MB_1M = 2048.0
#: The figures of that run, always in bench-results.json (``None`` when it did not run or failed).
FULL_RUN_KEYS = ("dry_run_1m_seconds", "task_peak_rss_mb_1m", "plan_bytes_1m", "xcom_db_bytes_1m")


def met(value: float | None, target: float, op: str) -> bool | None:
    if value is None:
        return None
    return {"<": value < target, "<=": value <= target, ">=": value >= target}[op]


def targets_met(figures: dict[str, Any]) -> dict[str, bool | None]:
    """Each target the issue names: met, missed, or ``None`` when this run did not measure it."""
    return {
        "extraction_floor_ratio": met(
            figures.get("extraction_floor_ratio"), TARGET_EXTRACTION_FLOOR_RATIO, "<="
        ),
        "baseline_speedup": met(figures.get("baseline_speedup"), TARGET_BASELINE_SPEEDUP, ">="),
        "apply_rate_share": met(
            figures.get("apply_rate_share") if not figures.get("apply_failed_actions") else 0.0,
            TARGET_APPLY_RATE_SHARE,
            ">=",
        )
        if figures.get("apply_rate_share") is not None
        else None,
        "planner_1m_seconds": met(figures.get("planner_1m_seconds"), TARGET_PLANNER_1M_SECONDS, "<"),
        "planner_1m_peak_rss_mb": met(
            figures.get("planner_1m_peak_rss_mb"), TARGET_PLANNER_1M_PEAK_RSS_MB, "<"
        ),
        "parse_seconds_max": met(figures.get("parse_seconds_max"), TARGET_PARSE_SECONDS, "<"),
        "xcom_db_bytes_per_run": met(figures.get("xcom_db_bytes_per_run"), TARGET_XCOM_DB_BYTES, "<="),
        "dry_run_100k_seconds": met(figures.get("dry_run_100k_seconds"), TARGET_DRY_RUN_SECONDS, "<"),
        "dry_run_1m_seconds": met(figures["dry_run_1m_seconds"], TARGET_DRY_RUN_1M_SECONDS, "<"),
        "task_peak_rss_mb_1m": met(figures["task_peak_rss_mb_1m"], TARGET_TASK_PEAK_RSS_MB_1M, "<="),
        "xcom_db_bytes_1m": met(figures["xcom_db_bytes_1m"], TARGET_XCOM_DB_BYTES, "<="),
    }


def fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def print_table(
    args: argparse.Namespace, out: dict[str, Any], rows: list[dict[str, Any]], parse: list[dict[str, Any]]
) -> None:
    if rows:
        print_org_table(args, out, rows, parse)
    if out.get("full_run_users"):
        print_full_run(out)
    print(
        f"Bench process peak RSS: {out['process_peak_rss_mb']:.0f} MB; whole bench {out['bench_seconds']} s"
    )
    print("Targets met: " + ", ".join(f"{key}={fmt(value)}" for key, value in out["targets_met"].items()))
    print(f"Figures written to {args.results}")


def verdict(value: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[value]


def print_full_run(out: dict[str, Any]) -> None:
    """The whole daily DAG in dry run over the full-run org, each figure with its target."""
    users, targets = out["full_run_users"], out["targets_met"]
    print()
    print(
        f"Full run: airflow dags test {DAG_ID} over {users:,} users (own sandbox, seeded in "
        f"{out['full_run_sandbox_seed_seconds']} s, sandbox peak RSS "
        f"{fmt(out['full_run_sandbox_peak_rss_mb'])} MB), zero latency, no rate limit, dry run: "
        f"{'success' if out['full_run_succeeded'] else 'FAILED'}; load average {out['full_run_load_before']} "
        f"before, {out['full_run_load_after']} after"
    )
    tasks = out["full_run_task_peak_rss_mb"] or {}
    seconds = out["full_run_task_seconds"] or {}
    starts = out["full_run_task_start_rss_mb"] or {}
    for task_id, peak in tasks.items():
        start = starts.get(task_id)
        added = f"started at {start:8.1f} MB, +{peak - start:.1f}" if start is not None else "-"
        print(f"  {task_id:32} {fmt(seconds.get(task_id)):>8} s  peak RSS {peak:>8.1f} MB ({added})")
    print(f"  (per-task peak RSS: {out['full_run_task_rss_method']}; see docs/performance.md)")
    rows = (
        ("dry_run_1m_seconds", out["dry_run_1m_seconds"], f"< {TARGET_DRY_RUN_1M_SECONDS:g} s"),
        (
            "task_peak_rss_mb_1m",
            out["task_peak_rss_mb_1m"],
            f"<= {TARGET_TASK_PEAK_RSS_MB_1M:g} MB ({out['full_run_largest_task'] or '-'})",
        ),
        ("plan_bytes_1m", out["plan_bytes_1m"], "none (bytes in object storage)"),
        ("xcom_db_bytes_1m", out["xcom_db_bytes_1m"], f"<= {TARGET_XCOM_DB_BYTES} bytes"),
    )
    for key, value, target in rows:
        state = verdict(targets.get(key)) if key in targets else "-"
        print(f"  {key:22} {fmt(value):>14}  target {target:40} {state}")
    if users != FULL_RUN_1M:
        print(f"  (the *_1m figures are only filled at {FULL_RUN_1M:,} users; this run had {users:,})")
    print(
        f"  measured at {users:,} users: {out['full_run_seconds']} s, object storage "
        f"{out['full_run_object_storage_bytes']} bytes, metadata-DB XCom "
        f"{fmt(out['full_run_xcom_db_bytes'])} bytes"
    )


def print_org_table(
    args: argparse.Namespace, out: dict[str, Any], rows: list[dict[str, Any]], parse: list[dict[str, Any]]
) -> None:
    limit = out["settings"]["rate_limit_per_second"]
    limit_text = (
        f"{limit:g} req/s per credential+endpoint+method (burst {args.rate_limit_burst})" if limit else "off"
    )
    print(
        f"Sandbox org: {args.users} users (seed {args.seed}), separate process, "
        f"latency {args.latency_ms:g} ms, "
        f"rate limit {limit_text}; started in {out['sandbox_startup_seconds']}s, "
        f"peak RSS {fmt(out['sandbox_peak_rss_mb'])} MB"
    )
    print(
        f"{'stage':62} {'users':>9} {'API calls':>9} {'429s':>5} {'seconds':>9} {'users/s':>9} "
        f"{'peak RSS MB':>11} {'+MB':>7}"
    )
    for row in rows:
        print(
            f"{row['stage']:62} {row['users']:>9} {fmt(row['api_calls']):>9} {fmt(row['api_429']):>5} "
            f"{row['seconds']:>9.3f} {fmt(row['users_per_second']):>9} "
            f"{row['peak_rss_mb']:>11.1f} {row['peak_rss_growth_mb']:>7.1f}"
        )
    print()
    print(
        f"Extraction: {out['extraction_pages']} directory pages x {args.latency_ms:g} ms = paging floor "
        f"{fmt(out['extraction_floor_seconds'])} s; measured {out['extraction_seconds']} s "
        f"= {fmt(out['extraction_floor_ratio'])}x the floor (target <= {TARGET_EXTRACTION_FLOOR_RATIO}x); "
        f"Jira list ({out['extraction_jira_pages']} pages) read concurrently; "
        f"{len_or(out, 'table_users')} users"
    )
    la_rate = out.get("baseline_last_active_rate_per_minute")
    assumed = (
        f"at {la_rate:g}/min (ASSUMED: open-source scripts document it; Atlassian publishes none) "
        if la_rate
        else ""
    )
    print(
        f"Per-user baseline: listing {out['baseline_listing_seconds_per_page']} s/page "
        f"({out['baseline_listing_pages_sampled']} pages measured), then last-active-dates "
        + assumed
        + f"{out['baseline_seconds_per_user']} s/user ({out['baseline_sample']} users measured); "
        "EXTRAPOLATED to "
        f"{out['extraction_pages']} pages + {out['baseline_directory_users']} users: "
        f"{out['baseline_extrapolated_seconds']} s, {out['baseline_extrapolated_api_calls']} API calls "
        f"(any per-user client at that limit: >= {fmt(out['baseline_rate_bound_seconds'])} s); "
        f"speed-up {fmt(out['baseline_speedup'])}x (target >= {TARGET_BASELINE_SPEEDUP:g}x)"
    )
    if out.get("baseline_same_limit_speedup") is not None:
        print(
            f"Same baseline if last-active-dates allowed {fmt(limit)} req/s like every other endpoint: "
            f"{out['baseline_same_limit_seconds_per_user']} s/user, EXTRAPOLATED "
            f"{out['baseline_same_limit_extrapolated_seconds']} s (any per-user client: >= "
            f"{fmt(out['baseline_same_limit_rate_bound_seconds'])} s); speed-up "
            f"{out['baseline_same_limit_speedup']}x (no target: at equal limits the ceiling is "
            "100 x per-user call time / page time, under 100x because a page costs more than a call)"
        )
    print(
        f"Apply (live suspend): {out['apply_writes']} writes in "
        f"{fmt(out['apply_write_window_seconds'])} s = "
        f"{fmt(out['apply_writes_per_second'])} writes/s against a write limit of {fmt(limit)}/s = "
        f"{fmt(out['apply_rate_share'])} of it (target >= {TARGET_APPLY_RATE_SHARE:g}); 429s on the write "
        f"endpoint {out['apply_write_429s']}, on all calls {out['apply_api_429s']}; failed actions "
        f"{out['apply_failed_actions']}; outcomes {out['apply_outcomes']}"
    )
    if out.get("dry_run_seconds") is not None:
        xcoms = ", ".join(f"{row['task_id']}.{row['key']} {row['bytes']}" for row in out["dry_run_xcoms"])
        print(
            f"Dry run (airflow dags test {DAG_ID}, {out['dry_run_users']} users, zero latency, "
            "no rate limit): "
            f"{out['dry_run_seconds']} s, {'success' if out['dry_run_succeeded'] else 'FAILED'} "
            f"(target < {TARGET_DRY_RUN_SECONDS:g} s)"
        )
        print(
            f"XCom in the metadata DB for that run: {fmt(out['xcom_db_bytes_per_run'])} bytes ({xcoms}); "
            f"spilled to object storage: {out['xcom_object_storage_bytes_per_run']} bytes gzip "
            f"(threshold {out['xcom_spill_threshold_bytes']} bytes; target <= {TARGET_XCOM_DB_BYTES} bytes)"
        )
    print(
        f"Planner alone: {out['planner_synthetic_users']:,} synthetic users (UserTable, as "
        f"compute_inactivity gets it) in {out['planner_synthetic_seconds']} s, child peak RSS "
        f"{out['planner_synthetic_peak_rss_mb']} "
        f"MB (input table built: {out['planner_synthetic_input_rss_mb']} MB) "
        f"(targets < {TARGET_PLANNER_1M_SECONDS:g} s, < {TARGET_PLANNER_1M_PEAK_RSS_MB:g} MB at 1M); "
        "by action: "
        + ", ".join(f"{action} {sec} s" for action, sec in out["planner_synthetic_seconds_by_action"].items())
    )
    for row in parse:
        print(
            f"DAG parse {row['file']}: {row['cold_seconds']} s cold (fresh process, airflow pre-imported), "
            f"{row['warm_seconds']} s warm; {row['dags']} DAG(s) (target < {TARGET_PARSE_SECONDS} s)"
        )
    print(
        f"XCom JSON sizes at {len_or(out, 'table_users')} users: user table "
        f"{out['xcom_users_json_bytes'] / 2**20:.1f} MiB, plan records "
        f"{out['xcom_plan_json_bytes'] / 2**20:.1f} MiB "
        "(both spill to object storage)"
    )


def len_or(out: dict[str, Any], key: str) -> Any:
    return out.get(key, "-")
