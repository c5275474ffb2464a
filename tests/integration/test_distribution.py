"""The installable distribution: a wheel built from this source, in a clean virtualenv with Airflow.

Airflow must list the two connection types with their form fields (as the UI's connection form
gets them), and the "Test" button's code path must reach the sandbox through the registered hook.
The expected labels are the ones the README documents for the connection form, not read from
``provider_info``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")

#: The README's "Connections" form fields, per connection type (standard fields by the names the
#: UI's hook_meta endpoint uses: the Schema field is ``url_schema`` there).
FORM = {
    "atlassian_admin": {
        "hook_name": "Atlassian Admin API",
        "extra": {"org_id": "Organization ID", "directory_id": "Directory ID"},
        "relabel": {"host": "Admin API URL", "password": "Organization API key"},
        "hidden": {"login", "port", "url_schema"},
    },
    "atlassian_site": {
        "hook_name": "Atlassian site (Jira / JSM)",
        "extra": {},
        "relabel": {"host": "Site URL", "login": "Account e-mail", "password": "API token"},
        "hidden": {"port", "url_schema"},
    },
}

_INSPECT = """
import json, os, sys
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from airflow.models.connection import Connection

meta = {m.connection_type: m.model_dump(mode="json") for m in HookMetaService.hook_meta_data()}
tests = {}
for conn_id in sys.argv[1:]:
    conn = Connection.get_connection_from_secrets(conn_id)
    hook = conn.get_hook()
    tests[conn_id] = [type(hook).__name__, *conn.test_connection()]
print(json.dumps({"meta": {k: v for k, v in meta.items() if k.startswith("atlassian")}, "tests": tests}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tree, so the build leaves nothing in the checkout."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    shutil.copytree(REPO / "plugins", source / "plugins", ignore=ignore)
    shutil.copytree(REPO / "include" / "templates", source / "include" / "templates", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(UV), "build", "--wheel", "--out-dir", str(out)], cwd=source, check=True)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def clean_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    constraints = REPO / "constraints.txt"
    # Only the wheel and what it depends on, at the versions the tests run with.
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(python), str(wheel), "-c", str(constraints)],
        check=True,
    )
    return python


def test_the_wheel_carries_every_module_page_and_template(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "plugins" / "atlassian_cleanup"
    for path in package.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".html", ".css"} and "__pycache__" not in path.parts:
            assert f"atlassian_cleanup/{path.relative_to(package).as_posix()}" in names, path
    for template in (REPO / "include" / "templates").iterdir():
        assert f"atlassian_cleanup/templates/{template.name}" in names, template
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text
    # Nothing of the sandbox, the tools or the tests goes into the distribution.
    assert not [n for n in names if n.startswith(("atlassian_sandbox/", "tools/", "tests/"))]


def test_airflow_lists_the_connection_types_and_tests_them(clean_venv, sandbox, tmp_path):
    info = sandbox.info
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_CONN_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    env["AIRFLOW_CONN_ADMIN_TYPED"] = json.dumps(
        {
            "conn_type": "atlassian_admin",
            "host": info["base_url"],
            "password": info["admin_api_key"],
            "extra": {"org_id": info["org_id"]},
        }
    )
    env["AIRFLOW_CONN_SITE_TYPED"] = json.dumps(
        {
            "conn_type": "atlassian_site",
            "host": info["base_url"],
            "login": info["site_email"],
            "password": info["site_token"],
        }
    )
    env["AIRFLOW_CONN_ADMIN_BAD_KEY"] = json.dumps(
        {
            "conn_type": "atlassian_admin",
            "host": info["base_url"],
            "password": "not-the-key",
            "extra": {"org_id": info["org_id"]},
        }
    )
    result = subprocess.run(
        [str(clean_venv), "-c", _INSPECT, "admin_typed", "site_typed", "admin_bad_key"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    for conn_type, expected in FORM.items():
        meta = report["meta"][conn_type]
        assert meta["hook_name"] == expected["hook_name"]
        extra = meta["extra_fields"] or {}
        assert {name: field["schema"]["title"] for name, field in extra.items()} == expected["extra"]
        standard = meta["standard_fields"]
        for field, label in expected["relabel"].items():
            assert standard[field]["title"] == label, (conn_type, field)
        for field in expected["hidden"]:
            assert standard[field]["hidden"] is True, (conn_type, field)

    tests = report["tests"]
    assert tests["admin_typed"][:2] == ["AtlassianAdminHook", True], tests["admin_typed"]
    assert info["org_id"] in tests["admin_typed"][2]
    assert tests["site_typed"][:2] == ["AtlassianSiteHook", True], tests["site_typed"]
    assert tests["admin_bad_key"][:2] == ["AtlassianAdminHook", False]
    assert "not-the-key" not in tests["admin_bad_key"][2]
