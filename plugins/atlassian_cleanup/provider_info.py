"""What Airflow's ProvidersManager reads when this package is installed as a distribution.

``pip install .`` (or the built wheel) registers it through the ``apache_airflow_provider`` entry
point in ``pyproject.toml``: the two connection types then appear in the Airflow UI with their own
form fields and a working "Test" button (``test_connection`` on the hooks). The form is declared
here, declaratively (``conn-fields``, Airflow 3.2+), so the UI never imports the hooks to draw it.
Copying ``plugins/`` into Airflow still works without any of this; plain ``http`` connections with
the same fields keep working either way, because the hooks read the same extras.

Imports nothing: Airflow calls this while it discovers providers.
"""

from __future__ import annotations

from typing import Any

#: The distribution name in pyproject.toml; Airflow requires ``package-name`` to equal it.
DISTRIBUTION = "airflow-atlassian-user-cleanup"
VERSION = "0.1.0"

_SHARED_HIDDEN = ["schema", "port"]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": DISTRIBUTION,
        "name": "Atlassian user cleanup",
        "description": (
            "Finds inactive Atlassian Cloud users, warns them, suspends or removes access, deletes "
            "dormant accounts and restores access on request, with a CSV audit trail."
        ),
        "versions": [VERSION],
        "hooks": [
            {
                "integration-name": "Atlassian Cloud",
                "python-modules": ["atlassian_cleanup.client.hooks"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "atlassian_cleanup.client.hooks.AtlassianAdminHook",
                "hook-name": "Atlassian Admin API",
                "connection-type": "atlassian_admin",
                "ui-field-behaviour": {
                    "hidden-fields": [*_SHARED_HIDDEN, "login"],
                    "relabeling": {"host": "Admin API URL", "password": "Organization API key"},
                    "placeholders": {"host": "https://api.atlassian.com"},
                },
                "conn-fields": {
                    "org_id": {
                        "label": "Organization ID",
                        "description": "admin.atlassian.com > Settings > API keys shows it next to the key.",
                        "schema": {"type": "string", "minLength": 1},
                    },
                    "directory_id": {
                        "label": "Directory ID",
                        "description": (
                            "Optional: the directory whose users are cleaned up, several ids "
                            "separated by commas, or empty / * for every directory of the organization."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "hook-class-name": "atlassian_cleanup.client.hooks.AtlassianSiteHook",
                "hook-name": "Atlassian site (Jira / JSM)",
                "connection-type": "atlassian_site",
                "ui-field-behaviour": {
                    "hidden-fields": _SHARED_HIDDEN,
                    "relabeling": {
                        "host": "Site URL",
                        "login": "Account e-mail",
                        "password": "API token",
                    },
                    "placeholders": {
                        "host": "https://your-site.atlassian.net",
                        "login": "automation@example.com",
                    },
                },
            },
        ],
    }
