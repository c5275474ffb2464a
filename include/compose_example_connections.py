"""docker-compose ``airflow-init`` step: example connections for the demo stack.

With ``ATLASSIAN_CLEANUP_EXAMPLE_CONNECTIONS=true`` (and ``docker compose --profile demo up``, which
starts the sandbox and a Mailpit mail sink), this waits for the sandbox, reads its ``/_sim/info``
and creates ``atlassian_admin``, ``atlassian_site`` and ``smtp_default`` in the metadata database,
so the DAGs run against the fake org with no typing. A connection that already exists (created in
the UI, or set through an ``AIRFLOW_CONN_*`` variable) is left alone. Without the variable it does
nothing: a real deployment never gets demo credentials by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

SANDBOX_URL = os.environ.get("ATLASSIAN_SANDBOX_URL", "http://sandbox:8090")
SMTP_HOST = os.environ.get("ATLASSIAN_DEMO_SMTP_HOST", "mailpit")
SMTP_PORT = int(os.environ.get("ATLASSIAN_DEMO_SMTP_PORT", "1025"))


def _sandbox_info(timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            # S310: the URL is the operator's own ATLASSIAN_SANDBOX_URL setting (http by design).
            with urllib.request.urlopen(f"{SANDBOX_URL}/_sim/info", timeout=5) as response:  # noqa: S310
                return json.load(response)
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"example connections: the sandbox at {SANDBOX_URL} did not answer ({exc}). "
                    "Start the demo profile (docker compose --profile demo up) or unset "
                    "ATLASSIAN_CLEANUP_EXAMPLE_CONNECTIONS."
                ) from exc
            time.sleep(2)


def _defined(conn_id: str) -> bool:
    if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return True
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["airflow", "connections", "get", conn_id, "-o", "json"],  # noqa: S607 - the image's airflow
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def main() -> int:
    if os.environ.get("ATLASSIAN_CLEANUP_EXAMPLE_CONNECTIONS", "").lower() not in {"1", "true", "yes"}:
        print("example connections: not requested (ATLASSIAN_CLEANUP_EXAMPLE_CONNECTIONS unset)")
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from atlassian_sandbox.connections import sandbox_connections

    connections = sandbox_connections(
        _sandbox_info(), smtp_host=SMTP_HOST, smtp_port=SMTP_PORT, base_url=SANDBOX_URL
    )
    for conn_id, value in connections.items():
        if _defined(conn_id):
            print(f"example connections: {conn_id} already exists; left as it is")
            continue
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["airflow", "connections", "add", conn_id, "--conn-json", value],  # noqa: S607
            check=True,
        )
        target = SMTP_HOST if conn_id == "smtp_default" else SANDBOX_URL
        print(f"example connections: created {conn_id} -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
