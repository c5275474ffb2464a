"""The docker-compose deployment, run for real without Docker.

Airflow's ``scheduler``, ``dag-processor``, ``api-server`` and a Celery ``worker`` run as separate
OS processes sharing one AIRFLOW_HOME, with the CeleryExecutor, a fresh PostgreSQL metadata
database (also the Celery result backend), Redis as the broker, and the state store in a second
PostgreSQL database, as in docker-compose.yaml. The daily DAG is unpaused and triggered through
the REST API with a JWT from ``POST /auth/token``, runs **live** against the Atlassian sandbox
(day 0 of the demo: it warns, it never acts on users nobody warned) and must succeed, with every
task executed by the Celery worker.

Needs PostgreSQL and Redis on 127.0.0.1 (as CI provides); takes about a minute and a half.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml

from tests.integration.conftest import AS_OF
from tests.test_dag_integrity import CLEANUP_TASKS
from tools.airflow_env import REPO, airflow_env, connection_env
from tools.airflow_stack import AirflowStack, AirflowStackError, ApiClient, simple_auth_env

pytestmark = pytest.mark.integration

DAG_ID = "atlassian_user_cleanup"
TASKS = set(CLEANUP_TASKS)
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
USERS = 100
RUN_TIMEOUT_S = 360
ADMIN, ADMIN_PASSWORD = "admin", f"pw-{uuid.uuid4().hex[:12]}"


# --- services: throw-away PostgreSQL databases and a Redis db --------------------------------------


@pytest.fixture(scope="module")
def pg_databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases: Airflow's metadata (+ Celery results) and the cleanup state store."""
    if os.environ.get("ATLASSIAN_CLEANUP_SKIP_POSTGRES") == "1":
        pytest.skip("ATLASSIAN_CLEANUP_SKIP_POSTGRES=1: the PostgreSQL deployment is not tested in this run")
    suffix = uuid.uuid4().hex[:10]
    names = (f"acu_e2e_meta_{suffix}", f"acu_e2e_state_{suffix}")
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 (user postgres, trust auth): {exc}")
    try:
        yield names
    finally:
        with admin.connect() as conn:
            for name in names:
                # FORCE: a component that was SIGKILLed may still hold a connection for a moment.
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def redis_db() -> Iterator[int]:
    """An empty Redis database (never 0), claimed atomically so parallel runs do not share one."""
    import redis

    token = uuid.uuid4().hex
    candidates = list(range(1, 16))
    random.shuffle(candidates)
    for number in candidates:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
        try:
            # An empty db, and nobody claimed it between our check and our claim (SET NX).
            if client.dbsize() == 0 and client.set("acu-e2e-claim", token, nx=True, ex=3600):
                break
        except redis.RedisError as exc:  # pragma: no cover - depends on the machine
            pytest.fail(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}: {exc}")
        client.close()
    else:  # pragma: no cover
        pytest.fail("no empty Redis database among 1..15 for the Celery broker")
    try:
        yield number
    finally:
        client.flushdb()  # only the db this test claimed
        client.close()


# --- the stack -------------------------------------------------------------------------------------


def _policy(path: Path) -> Path:
    """The shipped policy as ``make demo`` adapts it: vip group protected, caps that fit the sandbox
    org, an admin digest address. Dry run stays the default; the run's conf switches it off."""
    data = yaml.safe_load((REPO / "include" / "policy.yaml").read_text(encoding="utf-8"))
    data["protected"]["groups"] = ["vip-executives"]
    data["safety"].update({"max_actions_per_run": 10_000, "max_action_share": 1.0})
    data["notifications"]["admin_emails"] = ["atlassian-admins@acme.example"]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def celery_provider() -> None:
    """Fail in a second, not after a minute of crashing components, when the pinned Celery provider
    cannot load (e.g. celery 5.7 removed ``celery.backends.database.retry``, which
    apache-airflow-providers-celery 3.26.0 imports)."""
    try:
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
    except ImportError as exc:
        import celery

        pytest.fail(f"the CeleryExecutor cannot be imported with celery {celery.__version__}: {exc}")


@contextlib.contextmanager
def _quiet_smtp_log() -> Iterator[None]:
    # aiosmtpd logs seven INFO lines per message; on a failure they would bury the process logs.
    logger = logging.getLogger("mail.log")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory, celery_provider, pg_databases, redis_db) -> Iterator[dict]:
    """Start the deployment, trigger one live run through the REST API, wait for it to finish."""
    from atlassian_sandbox import SandboxConfig, SandboxServer
    from tools.smtp_sink import SmtpSink

    meta_db, state_db = pg_databases
    tmp = tmp_path_factory.mktemp("celery-stack")
    home, audit_dir, xcom_dir = tmp / "airflow", tmp / "audit", tmp / "xcom"
    for path in (home, audit_dir, xcom_dir):
        path.mkdir()
    meta_url = f"{PG_SERVER}/{meta_db}"

    with (
        _quiet_smtp_log(),
        SandboxServer(SandboxConfig(users=USERS, seed=20261126, as_of=AS_OF)) as sandbox,
        SmtpSink(tmp / "mail") as smtp,
    ):
        env = {
            # dags/, plugins/, object-storage XComs and the audit dir exactly as `make demo` and the
            # other integration tests configure them; then compose's deployment settings on top.
            **airflow_env(home, audit_dir=audit_dir, xcom_dir=xcom_dir),
            **connection_env(sandbox.info, smtp.port),
            **simple_auth_env(home, {ADMIN: (ADMIN_PASSWORD, "admin")}),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
            # Airflow derives the async URL as postgresql+asyncpg; psycopg 3 (installed) does both.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": meta_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{meta_url}",
            # Paused at creation as in compose, so the test exercises the unpause; and no scheduled
            # run (catchup=False would still add today's): only the run triggered below exists.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW_CONN_ATLASSIAN_CLEANUP_STATE": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": 5432,
                    "login": "postgres",
                    "schema": state_db,
                }
            ),
            "ATLASSIAN_CLEANUP_POLICY": str(_policy(tmp / "policy.yaml")),
        }
        stack = AirflowStack(env, home, components=("api-server", "scheduler", "dag-processor", "worker"))
        started = time.monotonic()
        stack.cli("db", "migrate")
        with stack:
            print(f"stack healthy after {time.monotonic() - started:.0f}s")
            api = stack.client(ADMIN, ADMIN_PASSWORD)
            try:
                run = _trigger_and_wait(stack, api)
                result = {
                    "stack": stack,
                    "run": run,
                    "task_instances": api.get(
                        f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
                    )["task_instances"],
                    "audit_dir": audit_dir,
                    "sandbox_users": requests.get(f"{sandbox.url}/_sim/users", timeout=30).json()["users"],
                    "mails": smtp.messages(),
                    "meta_url": meta_url,
                    "state_url": f"{PG_SERVER}/{state_db}",
                    "worker_log": stack.log_path("worker").read_text(encoding="utf-8", errors="replace"),
                }
            except Exception as exc:
                if not isinstance(exc, AirflowStackError):  # those carry the log tails already
                    print(stack.logs_tail(60))
                raise
            finally:
                api.close()
            print(f"run finished {time.monotonic() - started:.0f}s after the start")
            yield result


def _trigger_and_wait(stack: AirflowStack, api: ApiClient) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    # The dag-processor parses dags/ after it starts; the DAG exists for the API once serialized.
    while api.request("GET", f"/api/v2/dags/{DAG_ID}").status_code != 200:
        stack.check_alive()
        assert time.monotonic() < deadline, "the DAG was never parsed"
        time.sleep(1)
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    # Tasks in a pool that does not exist are never scheduled (compose's airflow-init creates it).
    api.post(
        "/api/v2/pools", {"name": "atlassian_api", "slots": 4, "description": "Atlassian REST API calls"}
    )
    assert api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})["is_paused"] is False
    run_id = f"e2e_celery_{uuid.uuid4().hex[:8]}"
    api.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"dag_run_id": run_id, "logical_date": f"{AS_OF.isoformat()}T00:00:00Z", "conf": {"mode": "live"}},
    )
    while True:
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return run
        stack.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['state']} after {RUN_TIMEOUT_S}s")
        time.sleep(2)


# --- the checks --------------------------------------------------------------------------------------


def _kind(message: EmailMessage) -> str:
    return str(message["X-Atlassian-Cleanup-Kind"])


def test_live_run_succeeds_on_the_celery_worker(stack_run):
    stack: AirflowStack = stack_run["stack"]
    try:
        _check_run(stack_run)
    except Exception:
        print(stack.logs_tail(60))
        raise


def _celery_successes(meta_url: str, expected: int, timeout: float = 30) -> int:
    """SUCCESS rows in the Celery result backend (the metadata DB's ``celery_taskmeta``).

    Polled: a task reports its state to the api-server before its Celery task returns, so the run
    can be green a moment before the last result row is written.
    """
    engine = sa.create_engine(meta_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                count = conn.execute(
                    sa.text("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
                ).scalar_one()
            if count >= expected or time.monotonic() > deadline:
                return int(count)
            time.sleep(0.5)
    finally:
        engine.dispose()


def _check_run(result: dict) -> None:
    run, tis = result["run"], result["task_instances"]
    assert run["state"] == "success", {ti["task_id"]: ti["state"] for ti in tis}
    assert run["conf"] == {"mode": "live"}
    assert {ti["task_id"] for ti in tis} == TASKS
    assert {ti["state"] for ti in tis} == {"success"}

    # Executed by the Celery worker: it logged every task's workload, the result backend recorded
    # each one, and the tasks were queued on Celery's default queue.
    executed = [line for line in result["worker_log"].splitlines() if "Executing workload in Celery" in line]
    for task_id in TASKS:
        assert any(f"task_id='{task_id}'" in line for line in executed), f"{task_id} not run by the worker"
    assert {ti["queue"] for ti in tis} == {"default"}
    assert all(ti["hostname"] for ti in tis)
    assert _celery_successes(result["meta_url"], len(TASKS)) >= len(TASKS)

    # The audit: one CSV for the run, one row per sandbox account, and the manifest verifies.
    from atlassian_cleanup.reports.audit import verify_audit

    csvs = sorted(Path(result["audit_dir"]).glob("*.csv"))
    assert len(csvs) == 1, csvs
    manifest = verify_audit(csvs[0])
    assert manifest.mode == "live"
    assert manifest.run_id == run["dag_run_id"]
    with csvs[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert manifest.rows == len(rows) == len(result["sandbox_users"]) == USERS
    assert {row["account_id"] for row in rows} == {user["account_id"] for user in result["sandbox_users"]}

    # Day 0 live: users are warned (the final warning first), nobody is actioned yet.
    warned = {
        row["account_id"] for row in rows if row["proposed_action"] == "warn" and row["result"] == "done"
    }
    assert warned, "the live run warned nobody"
    assert not [row for row in rows if row["proposed_action"] != "warn" and row["result"] == "done"]
    mails = result["mails"]
    assert sum(_kind(m) == "warning" for m in mails) == len(warned)
    assert sum(_kind(m) == "digest" for m in mails) == 1

    # The state store is the PostgreSQL database of the connection, migrated by the task itself,
    # and it remembers every warning with its result.
    state = sa.create_engine(result["state_url"])
    try:
        assert {"acu_schema_migrations", "acu_runs", "acu_user_state", "acu_journal", "acu_claims"} <= set(
            sa.inspect(state).get_table_names()
        )
        with state.connect() as conn:
            runs = conn.execute(sa.text("SELECT run_id, mode FROM acu_runs")).all()
            journal = conn.execute(
                sa.text("SELECT account_id FROM acu_journal WHERE action = 'warn' AND outcome = 'succeeded'")
            ).all()
            stages = conn.execute(
                sa.text("SELECT account_id FROM acu_user_state WHERE stage = 'warned'")
            ).all()
    finally:
        state.dispose()
    assert [tuple(row) for row in runs] == [(run["dag_run_id"], "live")]
    assert {row[0] for row in journal} == warned
    assert {row[0] for row in stages} == warned
