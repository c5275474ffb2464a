"""The Makefile's options: `make airflow PORT=8081` and friends reach the tools, nothing else does.

Checked with `make -n` (print the commands, run nothing), so no Airflow starts here. The values
come from the README's examples, not from the Makefile's defaults.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path

from tools import airflow_local

REPO = Path(__file__).resolve().parents[2]


def _planned(*args: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """The tool commands `make -n` would run (the install recipe, if due, is left out)."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return [shlex.split(line) for line in result.stdout.splitlines() if " -m tools." in line]


def _option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_airflow_port_and_audit_dir_reach_the_tool():
    (command,) = _planned("airflow", "PORT=8081", "AUDIT_DIR=.demo/audit")
    assert command[1:3] == ["-m", "tools.airflow_local"]
    assert _option(command, "--port") == "8081"
    assert _option(command, "--audit-dir") == ".demo/audit"


def test_airflow_defaults_match_the_readme():
    (command,) = _planned("airflow")
    # README: "Airflow 3.3.2 on http://localhost:8080" and a 300-user sandbox org.
    assert _option(command, "--port") == "8080"
    assert _option(command, "--users") == "300"
    assert "--audit-dir" not in command
    assert "--date" not in command


def test_a_port_in_the_environment_is_not_picked_up_silently():
    # Hosting platforms export PORT for their own use; only `make airflow PORT=...` may change it.
    (command,) = _planned("airflow", env={"PORT": "9999", "USERS": "5"})
    assert _option(command, "--port") == "8080"
    assert _option(command, "--users") == "300"


def test_demo_takes_the_readme_options():
    (command,) = _planned("demo", "USERS=2000", "SEED=7", "DATE=2026-12-01")
    assert command[1:3] == ["-m", "tools.demo"]
    assert (_option(command, "--users"), _option(command, "--seed")) == ("2000", "7")
    assert _option(command, "--date") == "2026-12-01"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_missing_audit_dir_is_refused_before_anything_starts(tmp_path, capsys):
    workdir = tmp_path / "work"
    missing = tmp_path / "no-such-audit"
    code = airflow_local.main(
        ["--port", str(_free_port()), "--workdir", str(workdir), "--audit-dir", str(missing)]
    )
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
    assert not workdir.exists(), "nothing may be created or started for a refused option"


def test_a_busy_port_names_the_make_variable(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code = airflow_local.main(["--port", str(port), "--workdir", str(tmp_path / "w")])
    assert code == 1
    assert "make airflow PORT=" in capsys.readouterr().err


def test_bench_defaults_to_the_100k_org_without_the_full_run():
    # README: `make bench` measures a 100,000-user org (tools.bench's own default) and nothing more.
    (command,) = _planned("bench")
    assert command[1:3] == ["-m", "tools.bench"]
    assert "--full-run-users" not in command


def test_bench_size_1m_adds_the_full_run_over_a_million_users():
    (command,) = _planned("bench", "SIZE=1m")
    assert command[1:3] == ["-m", "tools.bench"]
    assert _option(command, "--full-run-users") == "1000000"
    assert "--full-run-only" not in command  # the 100k figures are measured too


def test_a_size_in_the_environment_is_not_picked_up_silently():
    (command,) = _planned("bench", env={"SIZE": "1m"})
    assert "--full-run-users" not in command


def test_a_mistyped_bench_size_is_refused_before_anything_runs():
    # A hurried `SIZE=1M` or `SIZE=1000000` must not quietly fall back to the 100k bench.
    for size in ("1M", "1000000", "", "10m"):
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", "bench", f"SIZE={size}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0, size
        assert f"SIZE={size} is not a bench size" in result.stderr
        assert "SIZE=1m" in result.stderr
        assert " -m tools." not in result.stdout  # nothing planned


def test_a_bench_size_typo_does_not_stop_other_targets():
    (command,) = _planned("demo", "SIZE=1M")
    assert command[1:3] == ["-m", "tools.demo"]
