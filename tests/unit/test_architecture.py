"""The import contracts in pyproject.toml hold, and `lint-imports` fails when one is broken.

The broken cases plant one forbidden import in a copy of the tree (the real files are never
touched) and expect the contract named in the README's engineering rules to fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "plugins"), str(root / "include")])}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for name in ("plugins", "include"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    path = root / module
    text = path.read_text(encoding="utf-8")
    marker = "from __future__ import annotations\n"
    assert marker in text, module
    path.write_text(text.replace(marker, marker + line + "\n", 1), encoding="utf-8")


def test_the_contracts_hold_on_the_repository():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        (
            "plugins/atlassian_cleanup/decisions/planner.py",
            "import requests  # noqa",
            "Decisions import no hook, HTTP, database or Airflow",
        ),
        (
            "plugins/atlassian_cleanup/decisions/policy.py",
            "from airflow.sdk import BaseHook  # noqa",
            "Decisions import no hook, HTTP, database or Airflow",
        ),
        (
            "plugins/atlassian_cleanup/client/pagination.py",
            "from atlassian_cleanup.decisions import policy  # noqa",
            "The Atlassian client imports no policy, decision or engine",
        ),
        (
            "include/atlassian_sandbox/app.py",
            "import atlassian_cleanup.decisions.records  # noqa",
            "The sandbox imports nothing from the package",
        ),
        (
            "plugins/atlassian_cleanup/reports/audit.py",
            "from atlassian_cleanup.actions import enforcement  # noqa",
            "The audit page imports neither the client nor the engine",
        ),
    ],
)
def test_a_forbidden_import_breaks_lint(tree_copy, module, planted, contract):
    _plant(tree_copy, module, planted)
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout
