"""Airflow hooks for the Atlassian Cloud Admin API and a Jira / Jira Service Management site.

* :class:`AtlassianAdminHook` (:mod:`~atlassian_cleanup.client.admin_hook`): the organization's
  directories, users, groups and account lifecycle, with the org Admin API key.
* :class:`AtlassianSiteHook` (:mod:`~atlassian_cleanup.client.site_hook`): one site's Jira users,
  groups and issues and its Jira Service Management requests, with an API token.

Both share :class:`~atlassian_cleanup.client.http_hook.AtlassianHttpHook` (one session per hook,
allow-listed connection extras, every call through the retry policy). The provider registers the
hooks under this module's name, and callers import them from here.
"""

from __future__ import annotations

from atlassian_cleanup.client.admin_hook import AtlassianAdminHook
from atlassian_cleanup.client.site_hook import AtlassianSiteHook

__all__ = ["AtlassianAdminHook", "AtlassianSiteHook"]
