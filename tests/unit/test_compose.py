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


def test_dockerfile_extends_the_image_with_airflows_own_constraints():
    # Airflow's guide to extending its image: pin apache-airflow to the image's version and
    # install additions with the constraints the image ships in ${HOME}/constraints.txt.
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile
    assert '--constraint "${HOME}/constraints.txt"' in dockerfile
    # The project's own lock is for the local virtualenv; it never overrides Airflow's in the image.
    assert "constraints.txt /opt" not in dockerfile
    assert "-c /opt/atlassian-cleanup/constraints.txt" not in dockerfile


def test_the_image_installs_every_runtime_requirement_by_name():
    import re
    import shlex
    import shutil
    import subprocess

    from packaging.requirements import Requirement

    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"RUN (sed -E .*?) +/opt/atlassian-cleanup/requirements\.txt >", dockerfile)
    assert match, "the Dockerfile derives the package names from requirements.txt with sed"
    sed = shutil.which("sed")
    assert sed
    argv = [sed, *shlex.split(match.group(1))[1:], str(REPO / "requirements.txt")]
    names = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    expected = []
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.name != "apache-airflow":
                extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
                expected.append(requirement.name + extras)
    assert names == expected
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+(\[[a-z,]+\])?", name) for name in names), names


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context():
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".demo", ".airflow-local", ".git", ".env"} <= ignored
    # What the Dockerfile copies must stay in the context.
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    for copied in ("dags/", "plugins/", "include/", "requirements.txt"):
        assert copied in dockerfile
        assert copied.rstrip("/") not in ignored


def test_init_fails_loudly_when_any_step_fails():
    script = COMPOSE["services"]["airflow-init"]["command"][1]
    commands = [
        line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    assert commands[0] == "set -eo pipefail", "the first command must make every later failure fatal"
    assert not [line for line in commands if "|| true" in line or line.endswith("|| :")]


def test_demo_init_waits_for_the_sandbox_it_reads():
    services = COMPOSE["services"]
    dependency = services["airflow-init"]["depends_on"]["sandbox"]
    assert dependency["condition"] == "service_healthy"
    # Without --profile demo the sandbox is not in the model; a required edge would break `up`.
    assert dependency["required"] is False
    assert {"postgres", "redis"} <= set(services["airflow-init"]["depends_on"])
    check = services["sandbox"]["healthcheck"]["test"]
    port = services["sandbox"]["entrypoint"][services["sandbox"]["entrypoint"].index("--port") + 1]
    assert f"http://localhost:{port}/_sim/info" in check
    from compose_example_connections import SANDBOX_URL

    assert SANDBOX_URL.endswith(f"sandbox:{port}")


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
