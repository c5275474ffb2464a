"""The import contracts in pyproject.toml hold, and `lint-imports` fails when one is broken; mypy
checks the listed pure modules strictly.

The broken cases plant one forbidden import (or one untyped function) in a copy of the tree (the
real files are never touched) and expect the contract named in the README's engineering rules, or
mypy, to fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
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


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


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


# One planted import per contract, each in a module the contract governs.
PLANTED_VIOLATIONS = [
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
        "plugins/atlassian_cleanup/review/store.py",
        "from atlassian_cleanup.actions import state  # noqa",
        "The review store imports neither Atlassian, the engine nor Airflow",
    ),
    (
        "plugins/atlassian_cleanup/reports/audit.py",
        "from atlassian_cleanup.actions import enforcement  # noqa",
        "The audit page imports neither the client nor the engine",
    ),
]


@pytest.mark.parametrize(("module", "planted", "contract"), PLANTED_VIOLATIONS)
def test_a_forbidden_import_breaks_lint(tree_copy, module, planted, contract):
    _plant(tree_copy, module, planted)
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout


def test_every_contract_has_a_planted_violation():
    """A contract added to pyproject.toml gets a case above, or this test names it."""
    contracts = _pyproject()["tool"]["importlinter"]["contracts"]
    planted = {contract for _, _, contract in PLANTED_VIOLATIONS}
    assert {contract["name"] for contract in contracts} == planted


# -- mypy --------------------------------------------------------------------------------------------

MYPY = Path(sys.executable).with_name("mypy")


def _mypy(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MYPY), "--config-file", str(root / "pyproject.toml"), "--cache-dir", str(root / ".mypy_cache")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_untyped_function_in_any_listed_module_breaks_lint(tree_copy):
    # An unannotated function passes plain mypy; only --strict (disallow_untyped_defs) rejects it,
    # so each listed module fails here unless mypy checks it, and checks it strictly.
    listed = _pyproject()["tool"]["mypy"]["files"]
    for module in listed:
        path = tree_copy / module
        path.write_text(path.read_text(encoding="utf-8") + "\n\ndef _untyped(value):\n    return value\n")

    result = _mypy(tree_copy)

    assert result.returncode != 0, result.stdout
    flagged = {
        line.split(":", 1)[0] for line in result.stdout.splitlines() if "missing a type annotation" in line
    }
    assert flagged == set(listed), result.stdout
    assert f"Found {len(listed)} errors in {len(listed)} files" in result.stdout, result.stdout
