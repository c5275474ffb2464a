"""Static checks of docker-compose.yaml (no Docker engine is needed to run them)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
]


def test_has_the_official_service_set():
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis"} <= set(COMPOSE["services"])


def test_airflow_services_share_the_common_settings():
    for name in AIRFLOW_SERVICES:
        service = COMPOSE["services"][name]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        mounts = {volume.rsplit(":", 1)[1] for volume in service["volumes"]}
        assert {
            "/opt/airflow/dags",
            "/opt/airflow/plugins",
            "/opt/airflow/include",
            "/opt/airflow/audit",
        } <= mounts
        assert service["build"] == "."


def test_large_xcoms_spill_to_a_shared_volume():
    env = COMPOSE["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__XCOM_BACKEND"].endswith("XComObjectStorageBackend")
    assert env["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"] == "file:///opt/airflow/xcom"
    assert env["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION"] == "gzip"
    assert "xcom-volume" in COMPOSE["volumes"]


def test_init_migrates_and_creates_the_pool_the_dag_uses():
    from atlassian_cleanup.settings import ATLASSIAN_POOL

    init = COMPOSE["services"]["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert f"airflow pools set {ATLASSIAN_POOL} " in init["command"][1]


def test_dockerfile_installs_the_pinned_files():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-r /opt/atlassian-cleanup/requirements.txt" in dockerfile
    assert "-c /opt/atlassian-cleanup/constraints.txt" in dockerfile


def test_state_store_uses_the_compose_postgres():
    import json

    env = COMPOSE["services"]["airflow-worker"]["environment"]
    raw = env["AIRFLOW_CONN_ATLASSIAN_CLEANUP_STATE"]
    default = raw[raw.index(":-") + 2 : -1]
    conn = json.loads(default)
    assert conn["conn_type"] == "postgres"
    assert conn["host"] == "postgres"
