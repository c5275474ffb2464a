"""Airflow UI plugin: the auditors' page (``/atlassian-audit``), in the nav and on each DAG run.

The only module the plugin loader scans (``plugins/.airflowignore`` keeps the library package out);
the page itself lives in :mod:`atlassian_cleanup.reports.audit_page`. The api-server mounts the app; the
UI shows it in an iframe under Browse, and as a tab on every DAG run, opened on that run.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from atlassian_cleanup.reports.audit_page import URL_PREFIX, create_app

_ROUTE = URL_PREFIX.lstrip("/")


class AtlassianAuditPlugin(AirflowPlugin):
    name = "atlassian_audit"
    fastapi_apps = [  # noqa: RUF012 - AirflowPlugin declares these as class attributes
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Atlassian user audit"},
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Atlassian audit",
            "href": f"{_ROUTE}/",
            "url_route": _ROUTE,
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Atlassian audit",
            "href": f"{_ROUTE}/?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "url_route": f"{_ROUTE}-run",
            "destination": "dag_run",
        },
    ]
