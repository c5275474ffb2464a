"""The sandbox's records: products, roles, the JSM workflow, and the org's objects.

Users, groups, resources, requests and comments as plain data, plus the simulated clock and the
error a state rule raises. Every change to them goes through :class:`~atlassian_sandbox.state.OrgState`.

Plain ``__slots__`` classes instead of pydantic models keep a 100,000-user org cheap to build.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

#: Internal product keys are the v1 / Jira application keys.
JIRA = "jira-software"
CONFLUENCE = "confluence"
JSM = "jira-servicedesk"
PRODUCTS: tuple[str, ...] = (JIRA, CONFLUENCE, JSM)
V2_PRODUCT_KEYS = {JIRA: "jira", CONFLUENCE: "confluence", JSM: "jira-servicedesk"}
PRODUCT_NAMES = {JIRA: "Jira", CONFLUENCE: "Confluence", JSM: "Jira Service Management"}
#: App roles that consume a product seat (admin roles imply product use).
PRODUCT_ROLES = frozenset({"atlassian/user", "atlassian/admin", "atlassian/basic"})

ORG_ADMIN = "atlassian/org-admin"
SITE_ADMIN = "atlassian/site-admin"

# JSM workflow: status name -> JSM statusCategory.
STATUS_CATEGORY = {
    "Waiting for support": "NEW",
    "In Progress": "INDETERMINATE",
    "Resolved": "DONE",
    "Canceled": "DONE",
}
STATUS_IDS = {"Waiting for support": "10001", "In Progress": "3", "Resolved": "10002", "Canceled": "10003"}
# Agent (Jira platform) transitions: id -> (name, target status), keyed by source category.
JIRA_TRANSITIONS: dict[str, list[tuple[str, str, str]]] = {
    "NEW": [
        ("21", "Start progress", "In Progress"),
        ("31", "Resolve", "Resolved"),
        ("41", "Cancel", "Canceled"),
    ],
    "INDETERMINATE": [
        ("11", "Back to waiting for support", "Waiting for support"),
        ("31", "Resolve", "Resolved"),
        ("41", "Cancel", "Canceled"),
    ],
    "DONE": [("51", "Reopen", "Waiting for support")],
}
# Customer transitions are a smaller set with their own ids (what /servicedeskapi exposes).
JSM_TRANSITIONS: dict[str, list[tuple[str, str, str]]] = {
    "NEW": [("761", "Resolve", "Resolved"), ("771", "Cancel request", "Canceled")],
    "INDETERMINATE": [("761", "Resolve", "Resolved"), ("771", "Cancel request", "Canceled")],
    "DONE": [("781", "Reopen", "Waiting for support")],
}


class SandboxError(Exception):
    """A state rule refused a transition; the HTTP layer maps ``kind`` to a family envelope."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # not_found | group_not_found | forbidden | synced | seats | bad_request | conflict
        self.message = message


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Simulated wall clock; frozen by default so runs are reproducible."""

    def __init__(self, start: datetime, *, running: bool = False) -> None:
        self._base = start
        self._anchor = time.monotonic()
        self.running = running

    def now(self) -> datetime:
        if not self.running:
            return self._base
        return self._base + timedelta(seconds=time.monotonic() - self._anchor)

    def set(self, value: datetime) -> None:
        self._base = value
        self._anchor = time.monotonic()


class Resource:
    __slots__ = ("ari", "cloud_id", "host_url", "key", "name", "seats")

    def __init__(self, key: str, cloud_id: str, host_url: str, seats: int) -> None:
        self.key = key
        self.cloud_id = cloud_id
        self.ari = f"ari:cloud:{key}::site/{cloud_id}"
        self.host_url = host_url
        self.name = PRODUCT_NAMES[key]
        self.seats = seats


class User:
    __slots__ = (
        "account_id",
        "account_status",
        "account_type",
        "added_to_org",
        "app_type",
        "claim_status",
        "deactivated_on",
        "deletion_scheduled_at",
        "department",
        "email",
        "for_deletion",
        "groups",
        "jira_email_visible",
        "job_title",
        "last_active",
        "locale",
        "membership",
        "mfa_enabled",
        "name",
        "nickname",
        "platform_roles",
        "populations",
        "scim_managed",
        "timezone",
    )

    def __init__(self, account_id: str, account_type: str, name: str, email: str | None) -> None:
        self.account_id = account_id
        self.account_type = account_type  # atlassian | app | customer
        self.app_type: str | None = None  # service | agent (apps only)
        self.name = name
        # Interned: a large org has a few dozen distinct nicknames, not one string per user.
        self.nickname = sys.intern(name.split(" ")[0].lower()) if name else ""
        self.email = email
        self.claim_status = "managed"  # managed | unmanaged
        self.scim_managed = False
        self.account_status = "active"  # active | inactive | closed
        self.membership = "active"  # directory membership: active | suspended | none
        self.for_deletion = False
        self.deletion_scheduled_at: datetime | None = None
        self.deactivated_on: datetime | None = None
        self.added_to_org: datetime = datetime(2020, 1, 1, tzinfo=UTC)
        self.platform_roles: list[str] = []
        self.groups: set[str] = set()
        self.last_active: dict[str, datetime] = {}  # product key -> last activity
        self.populations: tuple[str, ...] = ()
        self.job_title: str | None = None
        self.department: str | None = None
        self.timezone = "Europe/London"
        self.locale = "en_GB"
        self.mfa_enabled = True
        self.jira_email_visible = True

    @property
    def status(self) -> str:
        """The v2 composite status (§3.4)."""
        if self.for_deletion:
            return "for_deletion"
        if self.account_status != "active":
            return "deactivated"
        if self.membership == "none":
            return "not_invited"
        if self.membership == "suspended":
            return "suspended"
        return "active"

    @property
    def membership_status(self) -> str:
        return {"active": "active", "suspended": "suspended"}.get(self.membership, "no_membership")

    @property
    def managed(self) -> bool:
        return self.account_type == "atlassian" and self.claim_status == "managed"


class Group:
    __slots__ = ("admin", "default_for", "description", "external_synced", "id", "members", "name", "roles")

    def __init__(self, group_id: str, name: str, description: str | None = None) -> None:
        self.id = group_id
        self.name = name
        self.description = description
        self.external_synced = False
        self.admin = False  # grants an admin role: cannot be deleted through the API
        self.roles: list[tuple[str, str]] = []  # (product key, role)
        self.default_for: list[tuple[str, str]] = []
        self.members: set[str] = set()


class Comment:
    __slots__ = ("author", "body", "created", "id", "public")

    def __init__(self, comment_id: str, author: str, body: str, public: bool, created: datetime) -> None:
        self.id = comment_id
        self.author = author
        self.body = body
        self.public = public
        self.created = created


class CustomerRequest:
    __slots__ = (
        "channel",
        "comments",
        "created",
        "description",
        "issue_id",
        "key",
        "participants",
        "reporter",
        "request_type_id",
        "service_desk_id",
        "status",
        "status_history",
        "summary",
        "visible_at",
    )

    def __init__(
        self, issue_id: str, key: str, service_desk_id: str, request_type_id: str, reporter: str
    ) -> None:
        self.issue_id = issue_id
        self.key = key
        self.service_desk_id = service_desk_id
        self.request_type_id = request_type_id
        self.reporter = reporter
        self.channel = "portal"  # portal | email | api: how the request reached JSM
        self.summary = ""
        self.description = ""
        self.status = "Waiting for support"
        self.created = datetime(2020, 1, 1, tzinfo=UTC)
        self.status_history: list[tuple[str, datetime]] = []
        self.comments: list[Comment] = []
        self.participants: list[str] = []
        self.visible_at = 0.0  # monotonic time from which JQL search sees it

    @property
    def category(self) -> str:
        return STATUS_CATEGORY[self.status]
