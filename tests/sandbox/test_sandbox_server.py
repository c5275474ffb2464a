"""A real uvicorn server: free port, connection drops seen by ``requests``, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from atlassian_sandbox import SandboxConfig, SandboxServer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Any:
    with SandboxServer(SandboxConfig(users=80, seed=5)) as sb:
        yield sb


def suspend_url(sb: SandboxServer, account_id: str) -> str:
    info = sb.info
    directory = f"{sb.url}/admin/v2/orgs/{info['org_id']}/directories/{info['directory_id']}"
    return f"{directory}/users/{account_id}/suspend"


def admin_headers(sb: SandboxServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {sb.config.admin_api_key}"}


def test_server_binds_a_free_port_and_links_use_it(server: SandboxServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert not server.url.endswith(":0")
    server.configure(v1_page_size=20)
    info = requests.get(f"{server.url}/_sim/info", timeout=5).json()
    assert info["base_url"] == server.url
    page = requests.get(
        f"{server.url}/admin/v1/orgs/{info['org_id']}/users", headers=admin_headers(server), timeout=5
    ).json()
    assert page["links"]["next"].startswith(f"{server.url}/admin/v1/orgs/")
    assert server.calls()[-1]["path_template"] == "/admin/v1/orgs/{org_id}/users"


def test_drop_after_applies_the_write_but_the_client_sees_a_connection_error(server: SandboxServer) -> None:
    user = next(u for u in server.state.users.values() if u.populations[0] == "inactive_90")
    server.configure(chaos_drop_after=1.0, chaos_methods=["POST"])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.post(suspend_url(server, user.account_id), headers=admin_headers(server), timeout=5)
    assert user.membership == "suspended"
    assert server.calls()[-1]["injected"] == "drop_after"
    server.configure(chaos_drop_after=0.0)
    assert requests.get(f"{server.url}/_sim/health", timeout=5).status_code == 200


def test_drop_before_does_not_apply_the_write(server: SandboxServer) -> None:
    user = next(u for u in server.state.users.values() if u.populations[0] == "inactive_180")
    server.configure(chaos_drop_before=1.0)
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.post(suspend_url(server, user.account_id), headers=admin_headers(server), timeout=5)
    assert user.membership == "active"
    server.configure(chaos_drop_before=0.0)
    response = requests.post(suspend_url(server, user.account_id), headers=admin_headers(server), timeout=5)
    assert response.status_code == 204
    assert user.membership == "suspended"


def test_concurrent_clients_page_consistently(server: SandboxServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    info = server.info
    url = f"{server.url}/admin/v2/orgs/{info['org_id']}/directories/-/users/search"

    def walk(_: int) -> int:
        session = requests.Session()
        body: dict[str, Any] = {"limit": 7}
        count = 0
        while True:
            page = session.post(url, json=body, headers=admin_headers(server), timeout=10).json()
            count += len(page["data"])
            if not page["links"].get("next"):
                return count
            body = {"limit": 7, "cursor": page["links"]["next"]}

    with ThreadPoolExecutor(max_workers=6) as pool:
        counts = list(pool.map(walk, range(6)))
    expected = sum(1 for u in server.state.users.values() if u.account_type != "customer")
    assert counts == [expected] * 6


def test_cli_prints_the_url_writes_url_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    url_file = tmp_path / "sandbox.url"
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atlassian_sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--users",
            "60",
            "--seed",
            "42",
            "--as-of",
            "2026-11-26",
            "--url-file",
            str(url_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not url_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = url_file.read_text().strip()
        for _ in range(100):
            try:
                health = requests.get(f"{url}/_sim/health", timeout=2)
                break
            except requests.exceptions.ConnectionError:
                time.sleep(0.05)
        assert health.json() == {"status": "ok", "users": 60}
        process.send_signal(signal.SIGTERM)
        out, _err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert out.startswith(f"Atlassian sandbox listening on {url} (org ")
    assert "60 users" in out
