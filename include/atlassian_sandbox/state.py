"""In-memory org state and every state transition the sandbox supports.

One :class:`OrgState` holds the org, its single directory, product resources, users, groups and
the JSM service desk (the records are in :mod:`atlassian_sandbox.model`). All mutation goes through
methods here so Admin and Jira group writes act on the same membership data. Callers hold
:attr:`OrgState.lock` (a re-entrant lock) around reads and writes; the HTTP layer does that per
request.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from atlassian_sandbox.model import (
    CONFLUENCE,
    JIRA,
    JIRA_TRANSITIONS,
    JSM_TRANSITIONS,
    ORG_ADMIN,
    PRODUCT_NAMES,
    PRODUCT_ROLES,
    PRODUCTS,
    SITE_ADMIN,
    Clock,
    Comment,
    CustomerRequest,
    Group,
    Resource,
    SandboxError,
    User,
    iso,
)

# Tests import these records from here, where they were defined before model.py existed.
__all__ = ["CONFLUENCE", "JIRA", "ORG_ADMIN", "SITE_ADMIN", "OrgState", "User"]


class OrgState:
    def __init__(self, org_id: str, org_name: str, directory_id: str, as_of: date, seed: int) -> None:
        self.lock = threading.RLock()
        self.org_id = org_id
        self.org_name = org_name
        self.directory_id = directory_id
        self.directory_name = f"{org_name.capitalize()} directory"
        self.as_of = as_of
        self.seed = seed
        self.clock = Clock(datetime(as_of.year, as_of.month, as_of.day, 9, 0, tzinfo=UTC))
        self.site = org_name
        self.cloud_id = ""
        self.resources: dict[str, Resource] = {}
        self.users: dict[str, User] = {}
        self.user_order: list[str] = []
        self.groups: dict[str, Group] = {}
        self.group_order: list[str] = []
        self.service_desks: list[dict[str, str]] = []
        self.request_types: list[dict[str, Any]] = []
        self.requests: dict[str, CustomerRequest] = {}
        self.request_order: list[str] = []
        self.next_issue_number = 1
        self.next_comment_id = 10000
        self.api_account_id = ""
        self.seat_overrides: dict[str, int] = {}
        self.consistency_delay_s = 0.0
        self.deletion_grace_days = 14
        self.email_unknown_sender = "reject"  # JSM e-mail channel, mail from an unknown address
        self.expose_request_channel = False
        self._stale: dict[str, tuple[float, User]] = {}
        self.pending_deletion: set[str] = set()
        self.extra_directories: dict[str, Any] = {}  # id -> directories.ExtraDirectory
        self._version = 0  # bumped by every write; lets caches notice changes

    # ------------------------------------------------------------------ lookups
    def now(self) -> datetime:
        return self.clock.now()

    def user(self, account_id: str) -> User:
        self.process_due_deletions()
        user = self.users.get(account_id)
        if user is None:
            raise SandboxError("not_found", f"User {account_id} not found")
        return user

    def directory_user(self, account_id: str) -> User:
        """A user the directory knows: org accounts, not portal customers."""
        user = self.user(account_id)
        if user.account_type == "customer":
            raise SandboxError("not_found", f"User {account_id} not found in directory")
        return user

    def group(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise SandboxError("group_not_found", f"Group {group_id} not found")
        return group

    def group_by_name(self, name: str) -> Group:
        for group in self.groups.values():
            if group.name == name:
                return group
        raise SandboxError("group_not_found", f"Group {name} not found")

    def user_by_email(self, email: str) -> User | None:
        wanted = email.lower()
        for user in self.users.values():
            if user.email and user.email.lower() == wanted:
                return user
        return None

    def visible(self, user: User) -> User:
        """The view a read should return: a pre-write copy while eventual consistency lags."""
        stale = self._stale.get(user.account_id)
        if stale is None:
            return user
        if time.monotonic() >= stale[0]:
            del self._stale[user.account_id]
            return user
        return stale[1]

    def sorted_groups(self, user: User) -> list[Group]:
        return sorted((self.groups[g] for g in user.groups if g in self.groups), key=lambda g: g.name)

    def user_products(self, user: User) -> list[str]:
        """Products the user may use, derived from their groups' role assignments (§5.1)."""
        products: set[str] = set()
        for group_id in user.groups:
            group = self.groups.get(group_id)
            if group is None:
                continue
            for product, role in group.roles:
                if role in PRODUCT_ROLES:
                    products.add(product)
        return [p for p in PRODUCTS if p in products]

    def seats(self, product: str) -> int:
        return self.seat_overrides.get(product, self.resources[product].seats)

    def seat_holders(self, product: str) -> int:
        granting = [
            g for g in self.groups.values() if any(p == product and r in PRODUCT_ROLES for p, r in g.roles)
        ]
        holders: set[str] = set()
        for group in granting:
            holders.update(group.members)
        return sum(1 for account_id in holders if self._consumes_seat(self.users.get(account_id)))

    @staticmethod
    def _consumes_seat(user: User | None) -> bool:
        # Suspended, deactivated and pending-deletion users are not billed (§4.1, §4.5).
        return (
            user is not None
            and user.account_type == "atlassian"
            and user.account_status == "active"
            and user.membership == "active"
            and not user.for_deletion
        )

    def _check_seats(self, user: User, new_products: Iterable[str]) -> None:
        if user.account_type != "atlassian":
            return
        current = set(self.user_products(user))
        for product in new_products:
            if product in current:
                continue
            cap = self.seats(product)
            # Cheap upper bound first: a 100k org must not count every seat on each write.
            granting = [
                g
                for g in self.groups.values()
                if any(p == product and r in PRODUCT_ROLES for p, r in g.roles)
            ]
            if sum(len(g.members) for g in granting) + 1 <= cap:
                continue
            if self.seat_holders(product) + 1 > cap:
                raise SandboxError(
                    "seats", f"Adding this user would exceed the {PRODUCT_NAMES[product]} user limit of {cap}"
                )

    # ------------------------------------------------------------------ write plumbing
    def _before_write(self, user: User) -> None:
        self._version += 1
        if self.consistency_delay_s <= 0:
            return
        visible_at = time.monotonic() + self.consistency_delay_s
        previous = self._stale.get(user.account_id)
        snapshot = previous[1] if previous and time.monotonic() < previous[0] else _copy_user(user)
        self._stale[user.account_id] = (visible_at, snapshot)

    def process_due_deletions(self) -> list[str]:
        """Finish deletions whose 14-day grace has elapsed (§4.5): the account disappears."""
        if not self.pending_deletion:
            return []
        now = self.now()
        due = sorted(
            a
            for a in self.pending_deletion
            if (u := self.users.get(a)) is not None
            and u.deletion_scheduled_at
            and u.deletion_scheduled_at <= now
        )
        for account_id in due:
            user = self.users.pop(account_id)
            for group_id in list(user.groups):
                self.groups[group_id].members.discard(account_id)
            self._stale.pop(account_id, None)
            self.pending_deletion.discard(account_id)
            self._version += 1
        if due:
            gone = set(due)
            self.user_order = [a for a in self.user_order if a not in gone]
        return due

    def set_now(self, value: datetime) -> list[str]:
        self.clock.set(value)
        return self.process_due_deletions()

    # ------------------------------------------------------------------ directory actions (§4.1-4.3)
    def suspend(self, account_id: str) -> User:
        user = self.directory_user(account_id)
        if user.membership == "none":
            raise SandboxError("not_found", f"User {account_id} is not a member of this directory")
        self._before_write(user)
        # Groups and roles are kept so restore brings them back.
        user.membership = "suspended"
        return user

    def restore(self, account_id: str) -> User:
        user = self.directory_user(account_id)
        if user.membership == "none":
            raise SandboxError("not_found", f"User {account_id} is not a member of this directory")
        if (
            user.membership == "suspended"
            and user.account_type == "atlassian"
            and user.account_status == "active"
        ):
            # Restoring brings back billed seats, so the licence cap applies (§9.13).
            for product in self.user_products(user):
                if self.seat_holders(product) + 1 > self.seats(product):
                    raise SandboxError(
                        "seats", f"Restoring this user would exceed the {PRODUCT_NAMES[product]} user limit"
                    )
        self._before_write(user)
        user.membership = "active"
        return user

    def remove_from_directory(self, account_id: str) -> User:
        user = self.directory_user(account_id)
        if user.membership == "none":
            raise SandboxError("not_found", f"User {account_id} is not a member of this directory")
        self._before_write(user)
        # Unlike suspend, removal drops every group membership; reinstating means re-adding them.
        for group_id in list(user.groups):
            self.groups[group_id].members.discard(account_id)
        user.groups.clear()
        user.membership = "none"
        return user

    # ------------------------------------------------------------------ groups (§5.2, §5.4)
    def _writable_membership(self, group_id: str, account_id: str) -> tuple[Group, User]:
        group = self.group(group_id)
        user = self.user(account_id)
        if group.external_synced:
            raise SandboxError(
                "synced", f"Group {group.name} is synced from an identity provider and is read-only"
            )
        return group, user

    def add_member(self, group_id: str, account_id: str) -> bool:
        """Add a user to a group; returns False when already a member."""
        group, user = self._writable_membership(group_id, account_id)
        if user.account_type == "customer":
            raise SandboxError("bad_request", "Portal-only customers cannot be added to groups")
        if user.membership == "none":
            raise SandboxError("not_found", f"User {account_id} is not a member of this directory")
        if group.id in user.groups:
            return False
        self._check_seats(user, [p for p, r in group.roles if r in PRODUCT_ROLES])
        self._before_write(user)
        group.members.add(account_id)
        user.groups.add(group.id)
        return True

    def remove_member(self, group_id: str, account_id: str) -> bool:
        """Remove a user from a group; returns False when they were not a member."""
        group, user = self._writable_membership(group_id, account_id)
        if group.id not in user.groups:
            return False
        self._before_write(user)
        group.members.discard(account_id)
        user.groups.discard(group.id)
        return True

    def create_group(self, group_id: str, name: str, description: str | None) -> Group:
        if any(g.name.lower() == name.lower() for g in self.groups.values()):
            raise SandboxError("conflict", f"A group named {name} already exists")
        group = Group(group_id, name, description)
        self.groups[group_id] = group
        self.group_order.append(group_id)
        self._version += 1
        return group

    def delete_group(self, group_id: str) -> None:
        group = self.group(group_id)
        if group.default_for:
            raise SandboxError("default_group", f"{group.name} is a default group and cannot be deleted")
        if group.admin:
            raise SandboxError("admin_group", f"{group.name} grants admin access and cannot be deleted")
        if group.members:
            raise SandboxError("not_empty", f"{group.name} still has members")
        del self.groups[group_id]
        self.group_order.remove(group_id)
        self._version += 1

    # ------------------------------------------------------------------ lifecycle (§4.5)
    def lifecycle_block_reason(self, user: User) -> str | None:
        """Why the user-management API may not manage this account, or None."""
        # Only accounts on a claimed domain can be managed (§9.1); SCIM-provisioned ones belong to
        # the identity provider (AX-186).
        if user.account_type != "atlassian" or user.claim_status != "managed":
            return "accountNotManaged"
        if user.scim_managed:
            return "externalDirectory.scim"
        return None

    def _lifecycle_user(self, account_id: str) -> User:
        user = self.user(account_id)
        reason = self.lifecycle_block_reason(user)
        if reason is not None:
            raise SandboxError("forbidden", reason)
        return user

    def disable(self, account_id: str) -> User:
        user = self._lifecycle_user(account_id)
        if user.for_deletion:
            raise SandboxError("bad_request", "The account is scheduled for deletion")
        self._before_write(user)
        if user.account_status == "active":
            user.account_status = "inactive"
            user.deactivated_on = self.now()
        return user

    def enable(self, account_id: str) -> User:
        user = self._lifecycle_user(account_id)
        if user.for_deletion:
            # A deleted account must go through cancel-delete first (§4.5).
            raise SandboxError(
                "bad_request", "The account is scheduled for deletion; cancel the deletion first"
            )
        self._before_write(user)
        user.account_status = "active"
        user.deactivated_on = None
        return user

    def delete(self, account_id: str) -> User:
        user = self._lifecycle_user(account_id)
        self._before_write(user)
        if not user.for_deletion:
            user.for_deletion = True
            user.account_status = "inactive"
            user.deactivated_on = user.deactivated_on or self.now()
            user.deletion_scheduled_at = self.now() + timedelta(days=self.deletion_grace_days)
            self.pending_deletion.add(user.account_id)
        return user

    def cancel_delete(self, account_id: str) -> User:
        user = self._lifecycle_user(account_id)
        if not user.for_deletion:
            raise SandboxError("bad_request", "The account is not scheduled for deletion")
        self._before_write(user)
        user.for_deletion = False
        user.deletion_scheduled_at = None
        self.pending_deletion.discard(user.account_id)
        user.account_status = "active"
        user.deactivated_on = None
        return user

    # ------------------------------------------------------------------ activity (test hook)
    def record_activity(self, account_id: str, product: str, at: datetime | None) -> User:
        user = self.user(account_id)
        if product not in PRODUCTS:
            raise SandboxError("bad_request", f"unknown product {product}")
        self._before_write(user)
        user.last_active[product] = at or self.now()
        return user

    # ------------------------------------------------------------------ JSM (§6)
    def create_request(
        self,
        service_desk_id: str,
        request_type_id: str,
        reporter: str,
        summary: str,
        description: str,
        *,
        channel: str = "portal",
    ) -> CustomerRequest:
        desk = next((d for d in self.service_desks if service_desk_id in (d["id"], d["projectKey"])), None)
        if desk is None:
            raise SandboxError("not_found", f"Service desk {service_desk_id} does not exist")
        rtype = next(
            (
                t
                for t in self.request_types
                if t["id"] == str(request_type_id) and t["serviceDeskId"] == desk["id"]
            ),
            None,
        )
        if rtype is None:
            raise SandboxError(
                "bad_request", f"Request type {request_type_id} does not exist in this service desk"
            )
        number = self.next_issue_number
        self.next_issue_number += 1
        request = CustomerRequest(
            str(10000 + number), f"{desk['projectKey']}-{number}", desk["id"], rtype["id"], reporter
        )
        request.channel = channel
        request.summary = summary
        request.description = description
        request.created = self.now()
        request.status_history = [(request.status, request.created)]
        request.visible_at = time.monotonic() + self.consistency_delay_s
        self.requests[request.key] = request
        self.request_order.append(request.key)
        self._version += 1
        return request

    def email_request(
        self,
        sender: str,
        sender_name: str,
        subject: str,
        body: str,
        service_desk_id: str | None = None,
        request_type_id: str | None = None,
    ) -> tuple[CustomerRequest, bool]:
        """An inbound e-mail to the desk, turned into a request the way JSM's e-mail channel does.

        The reporter is the account whose e-mail is the sender's (the body is only the
        description: an address named in it is nobody's request). A sender no account has is
        rejected (``kind == "rejected"``) or becomes a new portal-only customer, as
        ``email_unknown_sender`` says. Returns the request and whether a customer was created.
        """
        if not self.service_desks:
            raise SandboxError("not_found", "No service desk receives e-mail")
        desk_id = service_desk_id or self.service_desks[0]["id"]
        desk = next((d for d in self.service_desks if desk_id in (d["id"], d["projectKey"])), None)
        if desk is None:
            raise SandboxError("not_found", f"Service desk {desk_id} does not exist")
        type_id = request_type_id or next(
            (t["id"] for t in self.request_types if t["serviceDeskId"] == desk["id"]), ""
        )
        reporter = self.user_by_email(sender)
        created = False
        if reporter is None:
            if self.email_unknown_sender != "create_customer":
                message = f"{sender} is not a customer of {desk['projectKey']}: the e-mail was not processed"
                raise SandboxError("rejected", message)
            reporter = self.create_customer(sender, sender_name)
            created = True
        request = self.create_request(
            desk["id"], type_id, reporter.account_id, subject.strip() or "(no subject)", body, channel="email"
        )
        return request, created

    def create_customer(self, email: str, name: str = "") -> User:
        """A portal-only customer account (``qm:`` id, no groups, not in the directory)."""
        account_id = f"qm:{uuid.uuid5(uuid.NAMESPACE_URL, 'mailto:' + email.lower())}"
        user = User(account_id, "customer", name or email.split("@", 1)[0], email)
        user.populations = ("customer",)
        user.added_to_org = self.now()
        self.users[account_id] = user
        self.user_order.append(account_id)
        self._version += 1
        return user

    def request(self, key: str) -> CustomerRequest:
        request = self.requests.get(key) or next(
            (r for r in self.requests.values() if r.issue_id == key), None
        )
        if request is None:
            raise SandboxError("not_found", f"Request {key} does not exist")
        return request

    def add_comment(self, key: str, author: str, body: str, public: bool) -> Comment:
        request = self.request(key)
        self.next_comment_id += 1
        comment = Comment(str(self.next_comment_id), author, body, public, self.now())
        request.comments.append(comment)
        self._version += 1
        return comment

    def transition(self, key: str, transition_id: str, *, customer: bool) -> CustomerRequest:
        request = self.request(key)
        table = JSM_TRANSITIONS if customer else JIRA_TRANSITIONS
        match = next((t for t in table[request.category] if t[0] == str(transition_id)), None)
        if match is None:
            raise SandboxError("bad_request", f"Transition {transition_id} is not valid for {request.key}")
        request.status = match[2]
        request.status_history.append((request.status, self.now()))
        self._version += 1
        return request

    # ------------------------------------------------------------------ ground truth
    def ground_truth(self, user: User) -> dict[str, Any]:
        groups = self.sorted_groups(user)
        access = self.user_products(user)
        activity = [t for t in user.last_active.values()]
        return {
            "account_id": user.account_id,
            "account_type": user.account_type,
            "app_type": user.app_type,
            "name": user.name,
            "nickname": user.nickname,
            "email": user.email,
            "email_domain": user.email.rsplit("@", 1)[-1] if user.email else None,
            "claim_status": user.claim_status if user.account_type == "atlassian" else None,
            "scim_managed": user.scim_managed,
            "account_status": user.account_status,
            "membership_status": user.membership_status,
            "status": user.status,
            "for_deletion": user.for_deletion,
            "deletion_scheduled_at": iso(user.deletion_scheduled_at),
            "deactivated_on": iso(user.deactivated_on),
            "added_to_org": iso(user.added_to_org),
            "platform_roles": list(user.platform_roles),
            "groups": [g.name for g in groups],
            "group_ids": [g.id for g in groups],
            "product_access": {p: iso(user.last_active.get(p)) for p in access},
            "last_active": {p: iso(user.last_active[p]) for p in PRODUCTS if p in user.last_active},
            "last_active_overall": iso(max(activity)) if activity else None,
            "populations": list(user.populations),
            "billable": self._consumes_seat(user) and bool(access),
            "jira_email_visible": user.jira_email_visible,
            "timezone": user.timezone,
            "mfa_enabled": user.mfa_enabled,
        }

    def canonical_dump(self) -> dict[str, Any]:
        """Everything generated, in a stable order (determinism tests compare this)."""
        return {
            "org": {
                "id": self.org_id,
                "name": self.org_name,
                "directory_id": self.directory_id,
                "cloud_id": self.cloud_id,
            },
            "resources": [{"key": r.key, "ari": r.ari, "seats": r.seats} for r in self.resources.values()],
            "groups": [
                {
                    "id": g.id,
                    "name": g.name,
                    "external_synced": g.external_synced,
                    "roles": g.roles,
                    "default_for": g.default_for,
                    "members": sorted(g.members),
                }
                for g in (self.groups[i] for i in self.group_order)
            ],
            "users": [self.ground_truth(self.users[a]) for a in self.user_order if a in self.users],
            "requests": [
                {"key": r.key, "reporter": r.reporter, "status": r.status, "summary": r.summary}
                for r in (self.requests[k] for k in self.request_order)
            ],
        }


def _copy_user(user: User) -> User:
    clone = copy.copy(user)
    clone.groups = set(user.groups)
    clone.last_active = dict(user.last_active)
    clone.platform_roles = list(user.platform_roles)
    return clone
