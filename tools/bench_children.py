"""The bench's child processes: the planner alone on synthetic users, and one DAG file's parse.

Each runs as ``python -m tools.bench --child-planner N`` or ``--child-parse PATH`` so its memory
and imports are its own, and prints one JSON line that :func:`run_child` reads back.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.airflow_env import REPO, airflow_env
from tools.bench_measure import AS_OF, api_user_email, peak_rss_mb


def synthetic_users(count: int, seed: int, *, chunk: int = 50_000) -> Iterator[list[dict[str, Any]]]:
    """UserRecords shaped like a real org's, in chunks (no HTTP, no sandbox generator).

    Per user: products Jira 90 %, Confluence 70 %, JSM 15 % (5 % of them never used, the rest last
    active 0-900 days ago at a random second), 0-4 of 40 groups, joined 30-3000 days ago, 1 % apps
    and 4 % customers, 5 % suspended, 3 % without a visible e-mail, 90 % managed.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = np.array([f"team-{i}" for i in range(40)], dtype=object)
    as_of = np.datetime64(AS_OF.replace(tzinfo=None), "s")

    def stamps(seconds_ago: np.ndarray) -> list[str]:
        text = np.datetime_as_string(as_of - seconds_ago.astype("timedelta64[s]"), unit="s")
        return [f"{value}Z" for value in text.tolist()]

    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        roll = rng.random(n)
        types = np.where(roll < 0.01, "app", np.where(roll < 0.05, "customer", "atlassian")).tolist()
        products = {}
        for product, share in (("jira", 0.9), ("confluence", 0.7), ("jsm", 0.15)):
            has = rng.random(n) < share
            used = rng.random(n) >= 0.05
            ago = rng.integers(0, 901, n) * 86_400 + rng.integers(0, 86_400, n)
            products[product] = (has.tolist(), used.tolist(), stamps(ago))
        emails = rng.random(n) < 0.97
        active = (rng.random(n) < 0.95).tolist()
        managed = (rng.random(n) < 0.9).tolist()
        added = stamps(rng.integers(30, 3001, n) * 86_400)
        group_count = rng.integers(0, 5, n).tolist()
        group_order = np.argsort(rng.random((n, len(groups))), axis=1)[:, :4]
        users = []
        for i in range(n):
            index = start + i
            access = {}
            for product in ("confluence", "jira", "jsm"):
                has, used, when = products[product]
                if has[i]:
                    access[product] = when[i] if used[i] else None
            seen = [value for value in access.values() if value]
            email = f"user{index}@acme.example" if emails[i] else None
            names = sorted(groups[group_order[i, : group_count[i]]].tolist())
            users.append(
                {
                    "account_id": f"712020:{index:08x}-bench",
                    "account_type": types[i],
                    "name": f"User {index}",
                    "email": email,
                    "email_domain": "acme.example" if email else None,
                    "status": "active" if active[i] else "suspended",
                    "account_status": "active",
                    "membership_status": "active",
                    "claim_status": "managed" if managed[i] else "unmanaged",
                    "added_to_org": added[i],
                    "platform_roles": [],
                    "groups": names,
                    "group_ids": [f"gid-{name}" for name in names],
                    "product_access": access,
                    "last_active": max(seen) if seen else None,
                    "time_zone": None,
                }
            )
        yield users


def child_planner(count: int, seed: int) -> int:
    import yaml

    from atlassian_cleanup.decisions.planner import plan_actions
    from atlassian_cleanup.decisions.policy import load_policy, policy_from_dict
    from atlassian_cleanup.decisions.user_table import UserTable

    policy = load_policy(REPO / "include" / "policy.yaml")
    started = time.perf_counter()
    # Built the way extract_users builds it (page by page into a UserTable, never a list of 1M
    # dicts), then through its XCom form, which is what compute_inactivity hands the planner.
    built = UserTable()
    for chunk in synthetic_users(count, seed):
        built.extend(chunk)
    del chunk
    table = UserTable.from_json(built.to_json())
    del built
    build_seconds = time.perf_counter() - started
    gc.collect()
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    plan = plan_actions(table, policy, AS_OF, api_user_emails=[api_user_email()])
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "users": count,
        "rows": len(plan),
        "build_seconds": round(build_seconds, 3),
        "seconds": round(seconds, 3),
        "peak_rss_before_plan_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    # The shipped policy suspends; the other actions word their reasons differently (per product
    # for remove_product_access), so they are timed too, after the peak above was taken.
    del plan
    gc.collect()
    shipped = yaml.safe_load((REPO / "include" / "policy.yaml").read_text(encoding="utf-8"))
    by_action = {str(policy.action): out["seconds"]}
    for action in ("suspend", "deactivate", "remove_product_access"):
        if action in by_action:
            continue
        variant = policy_from_dict({**shipped, "action": action}, source=f"policy.yaml, action {action}")
        started = time.perf_counter()
        plan = plan_actions(table, variant, AS_OF, api_user_emails=[api_user_email()])
        by_action[action] = round(time.perf_counter() - started, 3)
        del plan
        gc.collect()
    out["seconds_by_action"] = by_action
    print(json.dumps(out))
    return 0


def child_parse(path: str) -> int:
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


def run_child(args: list[str], timeout: float = 900) -> dict[str, Any]:
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
