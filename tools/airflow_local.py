"""`make airflow`: a local Airflow with the UI, running this repository's DAGs against the sandbox.

Starts the Atlassian sandbox (seeded org) and the SMTP sink, a fresh Airflow home in
``.airflow-local/`` (SQLite metadata DB, LocalExecutor: what ``airflow standalone`` runs), the
``atlassian_api`` pool, the connections, and the api-server, scheduler, dag-processor and triggerer
(the triggerer runs the approval step when a plan exceeds the safety caps). Prints the URL, the
login, and where e-mails and audit CSVs land; Ctrl-C stops everything it started.

    python -m tools.airflow_local [--port 8080] [--username admin --password admin] [--users 300]
                                  [--audit-dir .demo/audit]

Every start is fresh (the sandbox is re-seeded, so old Airflow state would not match it). The
policy is the one ``make demo`` uses (``ATLASSIAN_CLEANUP_POLICY`` wins): dry run by default; a
run's ``mode`` choice in the trigger form ("Live: ...") makes one run live.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

from tools.airflow_env import REPO, airflow_env, connection_env
from tools.airflow_stack import AirflowStack, AirflowStackError, port_is_free, simple_auth_env
from tools.demo import background, demo_policy

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
POOL = ("atlassian_api", "4", "Atlassian REST API calls")


def _wait_for_url_file(path: Path, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> str:
    """The URL a helper process writes once it listens (it picks a free port itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(encoding="utf-8").strip():
            return path.read_text(encoding="utf-8").strip()
        if process.poll() is not None:
            raise AirflowStackError(f"{what} exited with code {process.returncode} before it was ready")
        time.sleep(0.1)
    raise AirflowStackError(f"{what} did not start within {timeout:.0f}s")


class _Helpers:
    """The running sandbox and SMTP sink."""

    def __init__(self, info: dict, smtp_port: int, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        self.info, self.smtp_port, self.processes = info, smtp_port, processes

    def check_alive(self) -> None:
        for what, process in self.processes.items():
            if process.poll() is not None:
                raise AirflowStackError(f"{what} exited with code {process.returncode}")


@contextlib.contextmanager
def _helpers(workdir: Path, users: int, seed: int, as_of: date) -> Iterator[_Helpers]:
    """The sandbox and the SMTP sink, started as ``make demo`` starts them."""
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])}
    logs = workdir / "logs"
    sandbox_cmd = [python, "-m", "atlassian_sandbox", "--host", "127.0.0.1", "--port", "0"]
    sandbox_cmd += ["--users", str(users), "--seed", str(seed), "--as-of", as_of.isoformat()]
    sandbox_cmd += ["--url-file", str(workdir / "sandbox.url"), "--log-level", "warning"]
    smtp_cmd = [python, "-m", "tools.smtp_sink", "--port", "0", "--maildir", str(workdir / "mail")]
    smtp_cmd += ["--url-file", str(workdir / "smtp.url")]
    with (
        background(sandbox_cmd, logs / "sandbox.log", env) as sandbox,
        background(smtp_cmd, logs / "smtp.log", env) as smtp,
    ):
        sandbox_url = _wait_for_url_file(workdir / "sandbox.url", sandbox, "Atlassian sandbox")
        smtp_url = _wait_for_url_file(workdir / "smtp.url", smtp, "SMTP sink")
        with urllib.request.urlopen(f"{sandbox_url}/_sim/info", timeout=30) as response:
            info = json.load(response)
        processes = {"Atlassian sandbox": sandbox, "SMTP sink": smtp}
        yield _Helpers(info, int(smtp_url.rsplit(":", 1)[1]), processes)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    # `kill <pid>` stops as cleanly as Ctrl-C: the context managers below stop every process.
    raise KeyboardInterrupt


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _banner(
    stack: AirflowStack, args: argparse.Namespace, workdir: Path, audit_dir: Path, info: Mapping[str, object]
) -> str:
    login = json.dumps({"username": args.username, "password": args.password})
    policy = _rel(Path(stack.env["ATLASSIAN_CLEANUP_POLICY"]))
    return f"""
Airflow {stack.executor} on SQLite is up.

  UI          {stack.public_url}   user {args.username}  password {args.password}
  REST API    curl -s -X POST {stack.public_url}/auth/token -H 'Content-Type: application/json' \\
                -d '{login}'   (then: Authorization: Bearer <access_token>)
  Sandbox     {info["base_url"]}  ({info["users"]} users, org {info["org_id"]}; /_sim/users, /_sim/calls)
  E-mails     {_rel(workdir / "mail")}/*.eml  (warnings, admin digests, failure alerts)
  Audit CSVs  {_rel(audit_dir)}/  (and the audit page in the UI: Browse -> Atlassian audit)
  Policy      {policy}  (dry run; the trigger form's Mode choice overrides it for one run)
  Logs        {_rel(stack.log_dir)}/*.log, task logs in {_rel(stack.home / "logs")}/

The DAGs start unpaused: atlassian_user_cleanup runs once now for today (dry run, catchup is off),
atlassian_access_restoration every 10 minutes. Trigger more runs from the UI (the form has the params).
Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Airflow locally with the cleanup DAGs and the sandbox.")
    parser.add_argument("--port", type=int, default=8080, help="UI / REST API port (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--username", default="admin", help="UI login (default admin, role admin)")
    parser.add_argument("--password", default="admin", help="UI password (default admin)")
    parser.add_argument("--users", type=int, default=300, help="sandbox org size (default 300)")
    parser.add_argument("--seed", type=int, default=42, help="sandbox seed (default 42)")
    parser.add_argument("--date", default=None, help="the sandbox's today, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--workdir", default=str(REPO / ".airflow-local"), help="scratch directory")
    parser.add_argument(
        "--audit-dir",
        default=None,
        help="an existing audit folder to show on the audit page and write to (e.g. .demo/audit, "
        "where make demo leaves its CSVs); default: a fresh one in the scratch directory",
    )
    args = parser.parse_args(argv)
    if not port_is_free(args.port, args.host):
        print(
            f"Port {args.port} is in use; stop what uses it or pick another: make airflow PORT=8081 "
            "(or --port with python -m tools.airflow_local).",
            file=sys.stderr,
        )
        return 1
    shown_audit_dir = Path(args.audit_dir).resolve() if args.audit_dir else None
    if shown_audit_dir is not None and not shown_audit_dir.is_dir():
        print(
            f"Audit folder {args.audit_dir} does not exist; run make demo first, or leave AUDIT_DIR out.",
            file=sys.stderr,
        )
        return 1
    as_of = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    home, audit_dir, xcom_dir, logs = (workdir / name for name in ("airflow", "audit", "xcom", "logs"))
    for path in (home, audit_dir, xcom_dir, logs):
        path.mkdir(parents=True)
    audit_dir = shown_audit_dir or audit_dir
    # Also when started with SIGINT ignored (`cmd &` in a script): Ctrl-C / SIGINT must stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    stack: AirflowStack | None = None
    try:
        with _helpers(workdir, args.users, args.seed, as_of) as helpers:
            info, smtp_port = helpers.info, helpers.smtp_port
            env = {
                # dags/, plugins/ (the audit page plugin included), XComs and the audit dir as in
                # `make demo`; airflow_env also leaves new DAGs unpaused.
                **airflow_env(home, audit_dir=audit_dir, xcom_dir=xcom_dir),
                **connection_env(info, smtp_port),
                **simple_auth_env(home, {args.username: (args.password, "admin")}),
                # What `airflow standalone` runs on SQLite (Airflow 3 has no SequentialExecutor).
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # The LocalExecutor forks one worker per slot up front (32 by default); two DAGs
                # of sequential tasks never need more than a few.
                "AIRFLOW__CORE__PARALLELISM": "8",
                "ATLASSIAN_CLEANUP_POLICY": str(demo_policy(workdir)),
            }
            public_host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host  # noqa: S104
            stack = AirflowStack(
                env,
                home,
                components=COMPONENTS,
                port=args.port,
                host=args.host,
                public_url=f"http://{public_host}:{args.port}",
                log_dir=logs,
            )
            print(f"Sandbox {info['base_url']} and SMTP sink (port {smtp_port}) are up.")
            print(f"Preparing the Airflow metadata database in {_rel(home)} (SQLite)...")
            stack.cli("db", "migrate")
            # Before the scheduler starts: tasks in a missing pool are never scheduled.
            stack.cli("pools", "set", *POOL)
            print(f"Starting {', '.join(COMPONENTS)} (about half a minute)...")
            with stack:
                print(_banner(stack, args, workdir, audit_dir, info), flush=True)
                while True:
                    stack.check_alive()
                    helpers.check_alive()
                    time.sleep(2)
    except KeyboardInterrupt:
        print("\nStopped: every process this command started has exited.")
        return 0
    except AirflowStackError as exc:
        print(f"\nAIRFLOW FAILED: {exc}", file=sys.stderr)
        if stack is not None:
            print(f"Logs: {_rel(stack.log_dir)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
