"""`make demo`: run the daily cleanup DAG once against the local Atlassian sandbox.

Starts the sandbox (seeded org) and an SMTP sink, points the Airflow connections at them, runs
``airflow dags test atlassian_user_cleanup`` on a fresh SQLite metadata DB, prints a short summary
and the audit CSV path, stops everything it started, and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

from tools.airflow_env import REPO, airflow_env, connection_env

DAG_ID = "atlassian_user_cleanup"
RESTORE_DAG_ID = "atlassian_access_restoration"
STAGE_PREFIXES = (
    "extract_users:",
    "compute_inactivity:",
    "notify_warnings",
    "apply_actions",
    "delete_dormant",
    "export_audit:",
)


class DemoError(RuntimeError):
    pass


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(encoding="utf-8").strip():
            return path.read_text(encoding="utf-8").strip()
        if process.poll() is not None:
            raise DemoError(f"{what} exited with code {process.returncode} before it was ready")
        time.sleep(0.1)
    raise DemoError(f"{what} did not start within {timeout:.0f}s")


@contextlib.contextmanager
def background(cmd: list[str], log_path: Path, env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=REPO)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _run(cmd: list[str], env: Mapping[str, str], log_path: Path, what: str) -> str:
    result = subprocess.run(cmd, env=dict(env), cwd=REPO, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    log_path.write_text(output, encoding="utf-8")
    if result.returncode != 0:
        raise DemoError(
            f"{what} failed (exit {result.returncode}); full log: {log_path}\n{_error_excerpt(output)}"
        )
    return output


def _error_excerpt(output: str) -> str:
    """The first task exception and the lines that explain it, else the end of the log."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[\w.]+(Exception|Error): ", line):
            excerpt = [line]
            for follow in lines[index + 1 : index + 15]:
                if re.match(r"^\d{4}-\d\d-\d\dT", follow):
                    break
                excerpt.append(follow)
            return "\n".join(excerpt)
    return "\n".join(lines[-30:])


def demo_policy(workdir: Path) -> Path:
    """The shipped policy, adapted to show every stage on a 300-user sandbox org.

    Changes: a scoped rule for the unmanaged contractors (their removals wait in the review
    queue), the group ``vip-executives`` is protected
    (to show protection at work), deletion is on (7 days after the action, its notice 3 days
    ahead, so the simulated days reach both), and the safety caps are raised because the seeded
    org has far more long-inactive users than a real org's daily run would (the shipped caps would
    stop day 14, which is their job). Dry run stays the default: the live days go live through the
    run's ``mode`` param (``live``).
    ``ATLASSIAN_CLEANUP_POLICY`` set by the caller wins, so a policy can be tried on the sandbox.
    """
    configured = os.environ.get("ATLASSIAN_CLEANUP_POLICY")
    if configured:
        return Path(configured)
    data = yaml.safe_load((REPO / "include" / "policy.yaml").read_text(encoding="utf-8"))
    data.setdefault("protected", {})["groups"] = ["vip-executives"]
    data["delete_after_days"] = 7
    # The deletion notice 3 days ahead, so the simulated days show it (day 5) before deleting (day 8).
    data["delete_notice_days"] = 3
    data["safety"].update({"max_actions_per_run": 500, "max_action_share": 0.5})
    # The admin digest (one per run) and failure alerts go to the sink too.
    data["notifications"]["admin_emails"] = ["atlassian-admins@acme.example"]
    # Self-service restore from the sandbox's "IT Help Desk" for anyone on the company domain.
    data["restore"].update({"service_desk": "ITH", "allowed_domains": ["acme.example"]})
    # One scoped rule: the unmanaged contractors on the partner's domain lose their product access
    # after 60 idle days, where everybody else (the rule "default") is suspended after 90.
    data["rules"] = [
        {
            "name": "contractors",
            "match": {"email_domains": ["partner.example"], "managed": False},
            "inactivity": {"default_days": 60},
            "action": "remove_product_access",
            # Each contractor's removal waits for an admin in the review queue (approve or keep).
            "review": True,
        }
    ]
    path = workdir / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the cleanup DAG against the sandbox.")
    parser.add_argument("--users", type=int, default=300, help="sandbox org size (default 300)")
    parser.add_argument("--seed", type=int, default=42, help="sandbox seed (default 42)")
    parser.add_argument("--date", default=None, help="logical date YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--workdir", default=str(REPO / ".demo"), help="scratch directory")
    parser.add_argument("--dry-run-only", action="store_true", help="skip the live days")
    args = parser.parse_args(argv)

    run_date = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    home, audit_dir, xcom_dir = workdir / "airflow", workdir / "audit", workdir / "xcom"
    for path in (home, audit_dir, xcom_dir):
        path.mkdir()

    python = sys.executable
    base_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])}
    logs = workdir / "logs"
    sandbox_cmd = [python, "-m", "atlassian_sandbox", "--host", "127.0.0.1", "--port", "0"]
    sandbox_cmd += ["--users", str(args.users), "--seed", str(args.seed), "--as-of", run_date.isoformat()]
    sandbox_cmd += ["--url-file", str(workdir / "sandbox.url")]
    smtp_cmd = [python, "-m", "tools.smtp_sink", "--port", "0", "--maildir", str(workdir / "mail")]
    smtp_cmd += ["--url-file", str(workdir / "smtp.url")]
    try:
        with (
            background(sandbox_cmd, logs / "sandbox.log", base_env) as sandbox,
            background(smtp_cmd, logs / "smtp.log", base_env) as smtp,
        ):
            sandbox_url = _wait_for_file(workdir / "sandbox.url", sandbox, "Atlassian sandbox")
            smtp_url = _wait_for_file(workdir / "smtp.url", smtp, "SMTP sink")
            info = _get_json(f"{sandbox_url}/_sim/info")
            print(
                f"Sandbox: {sandbox_url} ({info['users']} users, org {info['org_id']}); SMTP sink: {smtp_url}"
            )
            env = {
                **base_env,
                **airflow_env(home, audit_dir=audit_dir, xcom_dir=xcom_dir),
                **connection_env(info, int(smtp_url.rsplit(":", 1)[1])),
                "ATLASSIAN_CLEANUP_POLICY": str(demo_policy(workdir)),
            }
            print(f"Policy: {env['ATLASSIAN_CLEANUP_POLICY']}")
            demo = _Demo(env, logs, audit_dir, workdir / "mail", sandbox_url)
            print("Preparing a fresh Airflow metadata database (SQLite)...")
            _run(
                [python, "-m", "airflow", "db", "migrate"], env, logs / "db-migrate.log", "airflow db migrate"
            )
            _run(
                [python, "-m", "airflow", "pools", "set", "atlassian_api", "4", "Atlassian REST API calls"],
                env,
                logs / "pools.log",
                "airflow pools set",
            )

            print(f"\n== Dry run for {run_date.isoformat()} (the default mode)")
            output, manifest = demo.run_dag(run_date, live=False)
            _print_summary(output, manifest, _get_json(f"{sandbox_url}/_sim/users"))

            if not args.dry_run_only:
                _live_days(demo, run_date)
            print(
                f"\nE-mails sent (one .eml file each): {demo.maildir} "
                f"({demo.mail_count('warning')} warnings, "
                f"{demo.mail_count('deletion_notice')} deletion notices, "
                f"{demo.mail_count('digest')} admin digests)"
            )
            print(
                f"Audit CSVs and manifests: {demo.audit_dir}; browse them on the audit page of the Airflow "
                f"UI with: make airflow AUDIT_DIR={_shown_path(demo.audit_dir)}"
            )
    except DemoError as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (what a make variable wants)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


def _get_json(url: str, body: Mapping[str, object] | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


class _Demo:
    """Runs ``airflow dags test`` and reads back what happened (audit, sandbox calls, mail)."""

    def __init__(self, env: Mapping[str, str], logs: Path, audit_dir: Path, maildir: Path, sandbox_url: str):
        self.env, self.logs, self.audit_dir, self.maildir = env, logs, audit_dir, maildir
        self.sandbox_url = sandbox_url
        self.runs = 0

    def run_dag(self, day: date, *, live: bool, dag_id: str = DAG_ID) -> tuple[str, dict]:
        self.runs += 1
        log = self.logs / f"dags-test-{self.runs}-{dag_id}-{day.isoformat()}{'-live' if live else ''}.log"
        cmd = [sys.executable, "-m", "airflow", "dags", "test", dag_id, day.isoformat()]
        if live:
            cmd += ["-c", json.dumps({"mode": "live"})]
        output = _run(cmd, self.env, log, f"airflow dags test {dag_id} {day.isoformat()}")
        _check_run_succeeded(output, log)
        audit_dir = self.audit_dir / "restore" if dag_id == RESTORE_DAG_ID else self.audit_dir
        manifests = sorted(audit_dir.glob("*.manifest.json"), key=lambda path: path.stat().st_mtime)
        if not manifests:
            raise DemoError(f"no audit manifest was written to {self.audit_dir}")
        return output, json.loads(manifests[-1].read_text(encoding="utf-8"))

    def last_call(self) -> int:
        calls = _get_json(f"{self.sandbox_url}/_sim/calls")["calls"]
        return calls[-1]["seq"] if calls else 0

    def writes_since(self, seq: int) -> Counter[str]:
        writes: Counter[str] = Counter()
        for call in _get_json(f"{self.sandbox_url}/_sim/calls?since={seq}")["calls"]:
            is_write = call["method"] in ("POST", "DELETE") and not call["path_template"].endswith("/search")
            ok = call["status"] is not None and 200 <= call["status"] < 300
            if is_write and ok and call["family"] in ("admin", "usermgmt"):
                # The path's last segment names the write (suspend, delete, ...); a DELETE removes
                # a user from the directory or from a group.
                writes[call["path"].rsplit("/", 1)[-1] if call["method"] == "POST" else "remove"] += 1
        return writes

    def mail_count(self, kind: str = "warning") -> int:
        """E-mails of one kind in the sink (``warning`` to users, ``digest`` to admins)."""
        count = 0
        for path in self.maildir.glob("*.eml"):
            # Only the header block: the kind header is set by atlassian_cleanup.actions.notifications.
            head = path.read_bytes().split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            if f"X-Atlassian-Cleanup-Kind: {kind}".encode() in head:
                count += 1
        return count

    def advance_clock(self, days: int) -> None:
        _get_json(f"{self.sandbox_url}/_sim/clock", {"advance_days": days})


def _done_by_action(manifest: Mapping[str, object]) -> Counter[str]:
    with Path(str(manifest["csv_path"])).open(encoding="utf-8", newline="") as handle:
        return Counter(row["proposed_action"] for row in csv.DictReader(handle) if row["result"] == "done")


def _live_days(demo: _Demo, day0: date) -> None:
    """Warn on day 0, act on day 14 (after the notice), run it again, notice day 18, delete day 21."""
    print("\n== Live runs over simulated days (the run's mode param set to live)")
    print("   state store: embedded SQLite (connection atlassian_cleanup_state is not defined)")
    # The shipped policy gives 14 days of notice from the first warning (warning.min_notice_days);
    # the deletion 7 days after the action is announced 3 days ahead (delete_notice_days).
    schedule = [
        (0, 0, "warn"),
        (14, 14, "act"),
        (14, 0, "same day again"),
        (18, 4, "deletion notice"),
        (21, 3, "delete"),
    ]
    reviewed: dict[str, str] = {}
    for offset, advance, label in schedule:
        day = day0 + timedelta(days=offset)
        if advance:
            demo.advance_clock(advance)
        seq, mails, digests = demo.last_call(), demo.mail_count(), demo.mail_count("digest")
        _, manifest = demo.run_dag(day, live=True)
        done = _done_by_action(manifest)
        writes = demo.writes_since(seq)
        sent = demo.mail_count() - mails
        if demo.mail_count("digest") - digests != 1:
            raise DemoError(f"the {day.isoformat()} run did not send exactly one admin digest")
        print(
            f"  {day.isoformat()} ({label}): warned {done['warn']}, suspended {done['suspend']}, "
            f"deactivated {done['deactivate']}, product access removed {done['remove_product_access']}, "
            f"deletion notices {done['delete_notice']}, deleted {done['delete']}; "
            f"Atlassian writes {sum(writes.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(writes.items())) or 'none'}), "
            f"warning e-mails {sent}; {_seats_line(manifest)}"
        )
        if label == "same day again" and (sum(writes.values()) or sent):
            raise DemoError("re-running the same day wrote to Atlassian or sent mail again")
        if label == "same day again":
            reviewed = _review_decisions(demo, day)
        if label == "deletion notice":
            _check_reviewed(manifest, reviewed)
        if label == "act" and not done["suspend"]:
            raise DemoError("day 14 suspended nobody: the warned users were not actioned")
        if label == "deletion notice" and not done["delete_notice"]:
            raise DemoError("day 18 sent no deletion notice before the day 21 deletions")
        if label == "delete" and not done["delete"]:
            raise DemoError("day 21 deleted nobody: the actioned users were not deleted")
        if label == "delete":
            _restore_request(demo, day, manifest)


def _review_decisions(demo: _Demo, day: date) -> dict[str, str]:
    """An admin answers the review queue (as on the audit page's review view): keeps one
    contractor for a month, approves the others. Returns ``{account_id: decision}``."""
    sys.path[:0] = [p for p in (str(REPO / "plugins"),) if p not in sys.path]
    from atlassian_cleanup.review.store import ReviewStore

    state_db = Path(demo.env["AIRFLOW_HOME"]) / "atlassian_cleanup_state.db"
    decided_at = datetime(day.year, day.month, day.day, 16, tzinfo=UTC)
    with ReviewStore(f"sqlite:///{state_db}") as reviews:
        waiting = [entry.account_id for entry in reviews.pending()]
        if len(waiting) < 2:
            raise DemoError(f"the review queue holds {len(waiting)} contractors on {day}; expected several")
        kept, approved = waiting[0], waiting[1:]
        reviews.decide([kept], decision="keep", reason="contract renewed in January", decided_by="admin",
                       decided_at=decided_at, keep_until=day + timedelta(days=30))  # fmt: skip
        reviews.decide(approved, decision="approve", reason="contract ended", decided_by="admin",
                       decided_at=decided_at)  # fmt: skip
    print(
        f"  {day.isoformat()} (review queue): {len(waiting)} contractors waited for an admin instead of "
        f"losing access; the admin kept {kept} until {(day + timedelta(days=30)).isoformat()} and "
        f"approved {len(approved)}"
    )
    return {kept: "keep", **dict.fromkeys(approved, "approve")}


def _check_reviewed(manifest: Mapping[str, object], reviewed: Mapping[str, str]) -> None:
    with Path(str(manifest["csv_path"])).open(encoding="utf-8", newline="") as handle:
        rows = {row["account_id"]: row for row in csv.DictReader(handle) if row["account_id"] in reviewed}
    kept = [a for a, decision in reviewed.items() if decision == "keep"]
    approved_done = [
        a
        for a, decision in reviewed.items()
        if decision == "approve"
        and rows[a]["proposed_action"] == "remove_product_access"
        and rows[a]["result"] == "done"
    ]
    if not approved_done or any(rows[a]["rule"] != "kept_in_review" for a in kept):
        raise DemoError(
            "the review decisions were not honoured: approved removals or the kept user are missing"
        )
    print(
        f"  (review queue): {len(approved_done)} approved contractors lost product access; "
        f"{kept[0]} stays protected (rule kept_in_review, by {rows[kept[0]]['review_by']}, "
        f"until {rows[kept[0]]['keep_until']})"
    )


def _seats_line(manifest: Mapping[str, object]) -> str:
    seats = manifest["summary"]["seats"]  # type: ignore[index]
    reclaimed = seats["total_reclaimed"]
    return f"billable seats {seats['total_before']} -> {seats['total_after']} ({reclaimed} reclaimed)"


def _restore_request(demo: _Demo, day: date, delete_manifest: Mapping[str, object]) -> None:
    """One user whose account was just deleted asks for it back through the service desk."""
    with Path(str(delete_manifest["csv_path"])).open(encoding="utf-8", newline="") as handle:
        deleted = [
            row
            for row in csv.DictReader(handle)
            if row["proposed_action"] == "delete"
            and row["outcome"].startswith("done")
            and "14-day" in row["outcome"]
        ]
    if not deleted:
        raise DemoError("no account pending deletion to restore")
    requester = deleted[0]
    info = _get_json(f"{demo.sandbox_url}/_sim/info")
    token = base64.b64encode(f"{info['site_email']}:{info['site_token']}".encode()).decode()
    body = {
        "serviceDeskId": str(info["service_desk_id"]),
        "requestTypeId": str(info["restore_request_type_id"]),
        "requestFieldValues": {"summary": "Please restore my Atlassian access"},
        "raiseOnBehalfOf": requester["account_id"],
    }
    request = urllib.request.Request(
        f"{demo.sandbox_url}/rest/servicedeskapi/request",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        key = json.load(response)["issueKey"]
    seq = demo.last_call()
    _, manifest = demo.run_dag(day, live=True, dag_id=RESTORE_DAG_ID)
    with Path(str(manifest["csv_path"])).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    status = _get_json(f"{demo.sandbox_url}/_sim/users?accountId={requester['account_id']}")["users"][0][
        "status"
    ]
    writes = demo.writes_since(seq)
    print(
        f"  {day.isoformat()} (restore request {key} from {requester['name']}, deleted that day): "
        f"account now {status}; Atlassian writes {', '.join(f'{k} {v}' for k, v in sorted(writes.items()))}; "
        f"{len(rows)} open restore requests answered (see {demo.audit_dir / 'restore'})"
    )
    if status != "active":
        raise DemoError(f"restore request {key} did not restore {requester['account_id']} (status {status})")


def _check_run_succeeded(output: str, log_path: Path) -> None:
    finished = [line for line in output.splitlines() if "DagRun Finished" in line]
    if not finished or "state=success" not in finished[-1]:
        raise DemoError(f"the DAG run did not succeed; see {log_path}\n{_error_excerpt(output)}")


#: Sandbox populations that must never get an action, whatever the policy's thresholds.
NEVER_ACTIONED = {
    "api_user",
    "org_admin",
    "site_admin",
    "product_admin",
    "app_service",
    "app_agent",
    "customer",
    "vip",
}


def _print_summary(output: str, manifest: Mapping[str, object], sandbox_users: Mapping[str, object]) -> None:
    csv_path = Path(str(manifest["csv_path"]))
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = {row["account_id"]: row for row in csv.DictReader(handle)}
    truth = {user["account_id"]: user for user in sandbox_users["users"]}  # type: ignore[attr-defined]
    if set(rows) != set(truth):
        raise DemoError(f"audit CSV has {len(rows)} accounts but the sandbox has {len(truth)}")
    wrongly_planned = [
        account_id
        for account_id, user in truth.items()
        if NEVER_ACTIONED & set(user["populations"]) and rows[account_id]["proposed_action"] != "none"
    ]
    if wrongly_planned:
        raise DemoError(f"protected accounts were planned for an action: {wrongly_planned}")

    actions = Counter(row["proposed_action"] for row in rows.values())
    protected = Counter(row["protected_by"].split(":", 1)[0] for row in rows.values() if row["protected_by"])
    print("\nStage log lines:")
    for line in output.splitlines():
        for prefix in STAGE_PREFIXES:
            index = line.find(prefix)
            if index >= 0 and ("planned" in line or "users" in line or "wrote" in line):
                print("  " + line[index:].split(" [airflow.", 1)[0].strip())
                break
    changed = " (nothing in Atlassian was changed)" if manifest["mode"] == "dry_run" else ""
    print(f"\nMode: {manifest['mode']}{changed}")
    print(f"Users: {len(rows)}")
    print("Planned actions: " + ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))
    for rule, count in sorted(Counter(row["policy_rule"] for row in rows.values()).items()):
        planned = Counter(row["proposed_action"] for row in rows.values() if row["policy_rule"] == rule)
        print(
            f"Policy rule {rule}: {count} users; " + ", ".join(f"{k} {v}" for k, v in sorted(planned.items()))
        )
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(protected.items()))
    print(f"Protected: {sum(protected.values())} ({kinds}); none of them has an action planned")
    print(f"Audit CSV: {csv_path}")
    print(f"Manifest sha256: {manifest['sha256']}")


if __name__ == "__main__":
    sys.exit(main())
