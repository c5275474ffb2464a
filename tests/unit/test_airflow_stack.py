"""tools.airflow_stack without Airflow: the environment it builds and how it stops processes.

The real components are exercised by tests/integration/test_celery_stack.py; here the component
commands are replaced by tiny Python processes so failures and cleanup can be checked in seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tools.airflow_stack import AirflowStack, AirflowStackError, simple_auth_env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent, which is not us) counts as gone; so does a
    # process reaped between the two checks (its /proc entry vanishes under us).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_environment_is_hermetic_and_consistent(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SomethingElse")
    monkeypatch.setenv("AIRFLOW_CONN_LEAKED", "http://leak")
    monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", "/leaked/policy.yaml")
    stack = AirflowStack({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}, tmp_path, port=18080)

    env = stack.env
    assert "AIRFLOW_CONN_LEAKED" not in env
    assert "ATLASSIAN_CLEANUP_POLICY" not in env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW_HOME"] == str(tmp_path.resolve())
    # The api port, [api] base_url and the Execution API URL agree (conventions §0.8).
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__API__BASE_URL"] == stack.base_url == "http://127.0.0.1:18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] == str(stack.health_port)
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64
    assert env["AIRFLOW__CORE__FERNET_KEY"]


def test_caller_secrets_win_and_public_url_is_the_base_url(tmp_path):
    stack = AirflowStack(
        {"AIRFLOW__API_AUTH__JWT_SECRET": "x" * 64},
        tmp_path,
        port=18081,
        host="0.0.0.0",
        public_url="http://localhost:18081/",
    )
    assert stack.env["AIRFLOW__API_AUTH__JWT_SECRET"] == "x" * 64
    assert stack.env["AIRFLOW__API__BASE_URL"] == "http://localhost:18081"
    # Processes on this machine still call the api-server by address, never via the wildcard.
    assert stack.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18081/execution/"


def test_refuses_unit_test_mode_and_unknown_components(tmp_path):
    with pytest.raises(ValueError, match="UNIT_TEST_MODE"):
        AirflowStack({"AIRFLOW__CORE__UNIT_TEST_MODE": "True"}, tmp_path)
    with pytest.raises(ValueError, match="webserver"):
        AirflowStack({}, tmp_path, components=("webserver",))


def test_simple_auth_env_writes_the_passwords_file(tmp_path):
    env = simple_auth_env(tmp_path, {"admin": ("secret-1", "admin"), "audit": ("secret-2", "viewer")})
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,audit:viewer"
    passwords = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    assert passwords == {"admin": "secret-1", "audit": "secret-2"}


def test_a_component_that_dies_fails_fast_with_its_log(tmp_path, monkeypatch):
    stack = AirflowStack({}, tmp_path, components=("scheduler",), startup_timeout=30)
    monkeypatch.setattr(
        stack, "_command", lambda component: [sys.executable, "-c", "print('boom: no database'); exit(3)"]
    )
    started = time.monotonic()
    with pytest.raises(AirflowStackError) as excinfo, stack:
        pass
    assert time.monotonic() - started < 15
    assert "scheduler (exit 3)" in str(excinfo.value)
    assert "boom: no database" in str(excinfo.value)
    assert stack.processes == {}


def test_stop_kills_what_is_left_in_the_process_group(tmp_path, monkeypatch):
    # The component starts a child that ignores SIGTERM (like a stuck task process) and exits.
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    parent = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
        "print('child', p.pid, flush=True); time.sleep(120)"
    )
    stack = AirflowStack({}, tmp_path, components=("dag-processor",))
    monkeypatch.setattr(stack, "_command", lambda component: [sys.executable, "-c", parent])
    stack.start()
    log = stack.log_path("dag-processor")
    deadline = time.monotonic() + 20
    while "child" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    child_pid = int(log.read_text().split()[1])
    assert _alive(child_pid)

    stack.stop(timeout=5)

    # SIGKILL is asynchronous and the orphan is reaped by init: allow a moment.
    deadline = time.monotonic() + 5
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)
    assert stack.processes == {}
