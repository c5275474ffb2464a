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


@pytest.fixture(autouse=True)
def own_deployment_memory(request, tmp_path_factory, monkeypatch) -> None:
    """Each test is a deployment of its own: its own audit folder and no record of earlier live runs.

    A live run checks that its state store is the one the deployment's latest live run used (an
    Airflow Variable and the audit manifests witness it). The tests share one metadata DB and give
    each org a fresh state store, which to the product looks exactly like lost memory.
    """
    monkeypatch.setenv("ATLASSIAN_CLEANUP_AUDIT_DIR", str(tmp_path_factory.mktemp("audit")))
    if "airflow_db" in request.fixturenames:
        request.getfixturevalue("airflow_db")
        forget_store_witness()


def forget_store_witness() -> None:
    """Delete the Variable that records which state store the latest live run used."""
    from airflow.models.variable import Variable

    from atlassian_cleanup.operators.cleanup import store_witness_key
    from atlassian_cleanup.settings import CLEANUP_DAG_ID

    Variable.delete(store_witness_key(CLEANUP_DAG_ID))


@pytest.fixture
def audit_dir() -> Path:
    return Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"])


def asset_events(asset_name: str, run_id: str) -> list[dict]:
    """The extras of the Asset events ``run_id`` recorded on the asset named ``asset_name``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == asset_name, AssetEvent.source_run_id == run_id)
        ).all()
    return [dict(row[0]) for row in rows]
