"""Task logs carry no deprecation noise from the project's own pins.

Every module a task process loads is imported in a fresh interpreter with all warnings shown; a
DeprecationWarning of any kind (ours or a locked dependency's) would be printed into every task log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TASK_MODULES = (
    "atlassian_cleanup.operators.cleanup",
    "atlassian_cleanup.operators.restore",
    "atlassian_cleanup.client.hooks",
    "atlassian_cleanup.actions.enforcement",
    "atlassian_cleanup.actions.notifications",
    "atlassian_cleanup.actions.state",
    "atlassian_cleanup.decisions.planner",
    "atlassian_cleanup.reports.audit",
    "airflow.providers.standard.operators.hitl",
    "airflow.providers.smtp.hooks.smtp",
    "airflow.sdk",
)


#: What a task process does besides importing: load the plugins folder (through its .airflowignore)
#: and parse the DAG files.
_LOAD = """
import importlib, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
assert not bag.import_errors, bag.import_errors
"""


def test_task_side_imports_warn_about_nothing(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONWARNINGS": "always"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO / "include")])
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    code = _LOAD
    result = subprocess.run(
        [sys.executable, "-c", code, *TASK_MODULES],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    noise = [line for line in (result.stdout + result.stderr).splitlines() if "eprecat" in line]
    assert noise == []
