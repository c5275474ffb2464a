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


def test_xcom_spill_threshold_matches_the_local_environment():
    # Every value of at least this many bytes goes to object storage, so the metadata DB keeps
    # about 1 KB of XCom per run at any org size (docs/performance.md); demo, tests and compose agree.
    from tools.airflow_env import XCOM_SPILL_THRESHOLD_BYTES, airflow_env

    local = airflow_env(Path("/tmp/h"), audit_dir=Path("/tmp/a"), xcom_dir=Path("/tmp/x"))
    key = "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD"
    for name in AIRFLOW_SERVICES:
        assert int(COMPOSE["services"][name]["environment"][key]) == XCOM_SPILL_THRESHOLD_BYTES, name
    assert int(local[key]) == XCOM_SPILL_THRESHOLD_BYTES
    assert XCOM_SPILL_THRESHOLD_BYTES <= 2048


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


def _env_of(name: str) -> dict:
    return COMPOSE["services"][name]["environment"]


def _volume_for(service: str, container_path: str) -> str:
    for volume in COMPOSE["services"][service]["volumes"]:
        source, target = volume.rsplit(":", 1)
        if target == container_path:
            return source
    raise AssertionError(f"{service} does not mount {container_path}")


def test_the_folders_the_code_writes_are_shared_by_workers_and_the_api_server():
    # Workers write audit CSVs and spilled XComs; the api-server serves the audit page and reads
    # XComs for the UI. Both must see the same named volume at the path the code is told to use.
    audit = _env_of("airflow-worker")["ATLASSIAN_CLEANUP_AUDIT_DIR"]
    xcom = _env_of("airflow-worker")["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"].removeprefix("file://")
    for path in (audit, xcom):
        sources = {_volume_for(s, path) for s in ("airflow-worker", "airflow-apiserver", "airflow-scheduler")}
        assert len(sources) == 1, (path, sources)
        assert sources.pop() in COMPOSE["volumes"], path
    assert _env_of("airflow-apiserver")["ATLASSIAN_CLEANUP_AUDIT_DIR"] == audit
    assert _env_of("airflow-worker")["ATLASSIAN_CLEANUP_POLICY"].startswith("/opt/airflow/include/")


def test_demo_profile_adds_the_sandbox_mail_sink_and_example_connections():
    services = COMPOSE["services"]
    assert services["sandbox"]["profiles"] == ["demo"]
    assert services["mailpit"]["profiles"] == ["demo"]
    init = services["airflow-init"]
    assert "include/compose_example_connections.py" in init["command"][1]
    # Off unless asked for: a real deployment never gets demo credentials by accident.
    assert init["environment"]["ATLASSIAN_CLEANUP_EXAMPLE_CONNECTIONS"].endswith(":-false}")
    assert (REPO / "include" / "compose_example_connections.py").is_file()


def test_example_connections_are_the_ones_the_demo_uses():
    from atlassian_sandbox.connections import sandbox_connections

    info = {
        "base_url": "http://127.0.0.1:9",
        "admin_api_key": "k",
        "org_id": "o",
        "directory_id": "d",
        "site_email": "a@b.example",
        "site_token": "t",
    }
    connections = sandbox_connections(
        info, smtp_host="mailpit", smtp_port=1025, base_url="http://sandbox:8090"
    )
    import json

    admin = json.loads(connections["atlassian_admin"])
    assert admin["host"] == "http://sandbox:8090"
    assert admin["extra"] == {"org_id": "o", "directory_id": "d"}
    assert json.loads(connections["smtp_default"])["host"] == "mailpit"
    assert set(connections) == {"atlassian_admin", "atlassian_site", "smtp_default"}


def test_image_and_requirements_match_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    requirements = (REPO / "requirements.txt").read_text(encoding="utf-8")
    assert "apache-airflow==3.3.2" in requirements
    assert "apache-airflow-providers-celery==" in requirements  # the executor compose runs
    assert "apache/airflow:3.3.2-python3.11" in dockerfile
    assert "docker compose up" in readme
    assert "docker compose --profile demo up" in readme
    for service in ("airflow-apiserver", "airflow-worker", "airflow-scheduler"):
        assert COMPOSE["services"][service]["build"] == "."
