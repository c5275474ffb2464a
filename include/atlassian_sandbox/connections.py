"""Airflow connections that point the cleanup DAGs at a running sandbox (and a mail sink).

One place for the connection shapes: ``make demo``, ``make airflow``, the tests and the
docker-compose demo profile (``include/compose_example_connections.py``) all build them here from
the sandbox's ``GET /_sim/info``. Values are JSON-form Airflow connections.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def sandbox_connections(
    info: Mapping[str, Any],
    *,
    smtp_host: str = "127.0.0.1",
    smtp_port: int | None = None,
    base_url: str | None = None,
) -> dict[str, str]:
    """``{conn_id: JSON}`` for ``atlassian_admin``, ``atlassian_site`` and (with a port) ``smtp_default``.

    :param info: the sandbox's ``/_sim/info`` (org and directory ids, demo credentials).
    :param base_url: the sandbox as the workers reach it, when that differs from ``info["base_url"]``
        (in compose: ``http://sandbox:8090``).
    """
    url = str(base_url or info["base_url"]).rstrip("/")
    connections = {
        "atlassian_admin": {
            "conn_type": "http",
            "host": url,
            "password": info["admin_api_key"],
            "extra": {"org_id": info["org_id"], "directory_id": info["directory_id"]},
        },
        "atlassian_site": {
            "conn_type": "http",
            "host": url,
            "login": info["site_email"],
            "password": info["site_token"],
        },
    }
    if smtp_port is not None:
        connections["smtp_default"] = {
            "conn_type": "smtp",
            "host": smtp_host,
            "port": smtp_port,
            "extra": {
                "from_email": "atlassian-cleanup@acme.example",
                "disable_ssl": True,
                "disable_tls": True,
                "timeout": 10,
                "retry_limit": 1,
            },
        }
    return {conn_id: json.dumps(value) for conn_id, value in connections.items()}
