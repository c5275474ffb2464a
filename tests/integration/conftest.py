"""Fixtures that run the real DAG against the sandbox with Airflow's in-process test runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from tools.airflow_env import connection_env

AS_OF = date(2026, 11, 26)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata DB in the session's throw-away AIRFLOW_HOME (SQLite)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[object]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=150, seed=20261126, as_of=AS_OF)) as server:
        yield server


@pytest.fixture
def sandbox_env(sandbox, smtp_sink, monkeypatch) -> dict[str, str]:
    env = connection_env(sandbox.info, smtp_sink.port)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory) -> Iterator[object]:
    from tools.smtp_sink import SmtpSink

    with SmtpSink(tmp_path_factory.mktemp("mail")) as sink:
        yield sink


def sandbox_users(sandbox) -> list[dict]:
    response = requests.get(f"{sandbox.url}/_sim/users", timeout=30)
    response.raise_for_status()
    return response.json()["users"]


@pytest.fixture
def audit_dir() -> Path:
    return Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"])
