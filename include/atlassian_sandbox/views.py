"""Wire shapes: how each API family renders the same state objects.

v1 Admin responses are snake_case, v2 camelCase (AX-241 / ID-8618); Jira and JSM have their own
user and date objects. Keeping every shape here means one place to fix when a field is wrong.
"""

from __future__ import annotations

import functools
import html
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from atlassian_sandbox.config import SandboxConfig
from atlassian_sandbox.model import (
    JIRA,
    JIRA_TRANSITIONS,
    JSM,
    PRODUCT_NAMES,
    PRODUCT_ROLES,
    PRODUCTS,
    STATUS_CATEGORY,
    STATUS_IDS,
    V2_PRODUCT_KEYS,
    CustomerRequest,
    Group,
    User,
    iso,
)
from atlassian_sandbox.state import OrgState

#: The Jira platform REST version the current request came in on: the sandbox serves each
#: ``/rest/api/3`` route under ``/rest/api/2`` too (``app.serve_v2_twins``), and the two differ in
#: their links and in rich text (v3 ADF documents, v2 plain strings).
JIRA_API_VERSION: ContextVar[int] = ContextVar("jira_api_version", default=3)


def jira_rest(base: str) -> str:
    """``{base}/rest/api/{2|3}``: links in a Jira answer point at the version that was called."""
    return f"{base}/rest/api/{JIRA_API_VERSION.get()}"


def adf_document(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (one paragraph), as v3 returns it."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def adf_text(node: Any) -> str | None:
    """The text of an ADF document (paragraphs joined by newlines); None when ``node`` is not one."""
    if not isinstance(node, dict) or node.get("type") != "doc" or not isinstance(node.get("content"), list):
        return None

    def walk(item: Any) -> str:
        if not isinstance(item, dict):
            return ""
        if item.get("type") == "text":
            return str(item.get("text") or "")
        if item.get("type") == "hardBreak":
            return "\n"
        return "".join(walk(child) for child in item.get("content") or [])

    return "\n".join(walk(block) for block in node["content"])


def rich_text(text: str) -> Any:
    """A rich-text field as the called version renders it: v3 an ADF document, v2 the string."""
    return adf_document(text) if JIRA_API_VERSION.get() == 3 else text


JIRA_CATEGORY = {
    "NEW": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "INDETERMINATE": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "DONE": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}


#: Characters ``quote`` leaves alone, plus the ``:`` of ``557058:uuid`` style account ids.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.~:-]*")


@functools.lru_cache(maxsize=1 << 18)
def quoted_id(account_id: str) -> str:
    """``quote(account_id, safe="")``, quicker: quote() was most of the time spent rendering a
    1,000-user Jira page, and a slow sandbox page counts against the client in make bench."""
    if _PLAIN_ID.fullmatch(account_id):
        return account_id.replace(":", "%3A")
    return quote(account_id, safe="")


def avatar(account_id: str) -> str:
    return f"https://avatar-management.services.atlassian.com/{quoted_id(account_id)}/128"


def product_key(product: str, config: SandboxConfig) -> str:
    return V2_PRODUCT_KEYS[product] if config.product_key_style == "v2" else product


# ---------------------------------------------------------------------------------------- Admin v2
def v2_user(
    state: OrgState, live: User, expand: set[str], base: str, config: SandboxConfig
) -> dict[str, Any]:
    user = state.visible(live)
    data: dict[str, Any] = {
        "accountId": user.account_id,
        "accountType": user.account_type,
        "status": user.status,
        "accountStatus": user.account_status,
        "membershipStatus": user.membership_status,
        "addedToOrg": iso(user.added_to_org),
        "name": user.name,
        "nickname": user.nickname,
        "email": user.email,
        "emailVerified": user.email is not None,
        "claimStatus": user.claim_status if user.account_type == "atlassian" else "unmanaged",
        "picture": avatar(user.account_id),
        "avatar": avatar(user.account_id),
        "managementSource": "scim" if user.scim_managed else "invited",
        "mfaEnabled": user.mfa_enabled,
        "jobTitle": user.job_title,
        "department": user.department,
        "organization": None,
        "location": None,
        "timeZone": user.timezone,
        "deactivatedOn": iso(user.deactivated_on),
        "forDeletion": user.for_deletion,
        "links": {
            "self": f"{base}/admin/v2/orgs/{state.org_id}/directories/{state.directory_id}"
            f"/users/{user.account_id}"
        },
    }
    if "platformRoles" in expand:
        data["platformRoles"] = list(user.platform_roles)
    if "counts.resources" in expand:
        data["counts"] = {"resources": len(state.user_products(user))}
    if "productAccess" in expand:
        entries = []
        for product in state.user_products(user):
            seen = user.last_active.get(product)
            # Whether an unused product shows as null or is omitted is unconfirmed: a knob.
            if seen is None and config.never_used_product_entry == "absent":
                continue
            entries.append(
                {
                    "key": product_key(product, config),
                    "id": state.resources[product].ari,
                    "lastActiveTimestamp": iso(seen),
                }
            )
        data["productAccess"] = entries
    if "groups" in expand:
        data["groups"] = [
            {"id": g.id, "name": g.name, "description": g.description} for g in state.sorted_groups(user)
        ]
    return data


def admin_group(state: OrgState, group: Group, base: str, counts: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "directoryId": state.directory_id,
        "managementAccess": {
            "deletable": not (group.external_synced or group.default_for or group.admin),
            "modifiable": not group.external_synced,
            "readable": True,
        },
        "externalSynced": group.external_synced,
        "managedBy": "external" if group.external_synced else "admins",
        "links": {
            "self": f"{base}/admin/v2/orgs/{state.org_id}/directories/{state.directory_id}/groups/{group.id}"
        },
    }
    if counts:
        data["counts"] = {"users": len(group.members), "resources": len({p for p, _ in group.roles})}
    return data


def role_assignments(state: OrgState, user: User) -> list[dict[str, Any]]:
    per_resource: dict[str, dict[str, set[str]]] = {}
    for group in state.sorted_groups(user):
        for product, role in group.roles:
            per_resource.setdefault(product, {}).setdefault(role, set()).add("group_direct")
    items = []
    for product in PRODUCTS:
        if product not in per_resource:
            continue
        items.append(
            {
                "resourceId": state.resources[product].ari,
                "resourceOwner": product,
                "roleAssignments": [
                    {"role": role, "roleAssignmentMethods": sorted(methods)}
                    for role, methods in sorted(per_resource[product].items())
                ],
                "directoryId": state.directory_id,
                "userDirectoryStatus": user.membership_status,
            }
        )
    # Platform roles are org/site scoped: no directory (§3.5).
    for role in user.platform_roles:
        scope = (
            f"ari:cloud:platform::org/{state.org_id}"
            if role.endswith("org-admin")
            else f"ari:cloud:platform::site/{state.cloud_id}"
        )
        items.append(
            {
                "resourceId": scope,
                "resourceOwner": "platform",
                "roleAssignments": [{"role": role, "roleAssignmentMethods": ["direct"]}],
                "directoryId": None,
                "userDirectoryStatus": user.membership_status,
            }
        )
    return items


# ---------------------------------------------------------------------------------------- Admin v1
def _v1_ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _account_basics(user: User) -> dict[str, Any]:
    """The snake_case account fields the v1 user and the user-management profile both open with."""
    return {
        "account_id": user.account_id,
        "account_type": user.account_type,
        "account_status": user.account_status,
        "name": user.name,
        "picture": avatar(user.account_id),
        "email": user.email,
    }


def v1_user(state: OrgState, live: User, base: str) -> dict[str, Any]:
    user = state.visible(live)
    data: dict[str, Any] = {
        **_account_basics(user),
        "access_billable": state._consumes_seat(user) and bool(state.user_products(user)),
    }
    used = [p for p in PRODUCTS if p in user.last_active]
    if used:
        data["last_active"] = _v1_ts(max(user.last_active.values()))
    data["product_access"] = [
        {
            "key": product,
            "name": PRODUCT_NAMES[product],
            "url": state.resources[product].host_url,
            "last_active": user.last_active[product].date().isoformat(),
        }
        for product in used
    ]
    data["links"] = {"self": f"{base}/users/{user.account_id}/manage/profile"}
    return data


def last_active_dates(state: OrgState, live: User) -> dict[str, Any]:
    user = state.visible(live)
    # Products never opened are absent; a user who never logged in gets an empty list (§3.6).
    return {
        "data": {
            "product_access": [
                {
                    "id": state.resources[product].ari,
                    "key": product,
                    "last_active": user.last_active[product].date().isoformat(),
                    "last_active_timestamp": iso(user.last_active[product]),
                }
                for product in PRODUCTS
                if product in user.last_active
            ],
            "added_to_org": user.added_to_org.date().isoformat(),
            "added_to_org_timestamp": iso(user.added_to_org),
        },
        "links": {"next": None},
    }


# ---------------------------------------------------------------------------------------- User mgmt
def profile(user: User) -> dict[str, Any]:
    return {
        "account": {
            **_account_basics(user),
            "characteristics": {"not_mentionable": False},
            "nickname": user.nickname,
            "zoneinfo": user.timezone,
            "locale": user.locale.replace("_", "-"),
            "extended_profile": {
                "job_title": user.job_title,
                "organization": None,
                "department": user.department,
                "location": None,
            },
        }
    }


# ---------------------------------------------------------------------------------------- Jira
def _jira_avatar_urls(account_id: str) -> dict[str, str]:
    url = avatar(account_id)
    return {size: f"{url}?s={size.split('x')[0]}" for size in ("48x48", "24x24", "16x16", "32x32")}


def jira_user(state: OrgState, live: User | None, base: str, account_id: str | None = None) -> dict[str, Any]:
    if live is None:
        return {
            "accountId": account_id,
            "displayName": "Former user",
            "active": False,
            "accountType": "unknown",
        }
    user = state.visible(live)
    data: dict[str, Any] = {
        "self": f"{jira_rest(base)}/user?accountId={quoted_id(user.account_id)}",
        "accountId": user.account_id,
        "accountType": user.account_type,
    }
    if user.app_type:
        data["appType"] = user.app_type
    # Jira hides e-mail addresses per the user's profile visibility setting (§5.4).
    if user.email and user.jira_email_visible:
        data["emailAddress"] = user.email
    data.update(
        {
            "avatarUrls": _jira_avatar_urls(user.account_id),
            "displayName": user.name,
            "active": user.account_status == "active",
            "timeZone": user.timezone,
            "locale": user.locale,
        }
    )
    return data


def jira_group(group: Group, base: str) -> dict[str, Any]:
    return {"name": group.name, "groupId": group.id, "self": f"{jira_rest(base)}/group?groupId={group.id}"}


def application_roles(state: OrgState, base: str) -> list[dict[str, Any]]:
    roles = []
    for product in (JIRA, JSM):
        granting = [
            state.groups[g]
            for g in state.group_order
            if any(p == product and r in PRODUCT_ROLES for p, r in state.groups[g].roles)
        ]
        defaults = [g for g in granting if (product, "atlassian/user") in g.default_for]
        seats = state.seats(product)
        used = state.seat_holders(product)
        roles.append(
            {
                "key": product,
                "name": "Jira Software" if product == JIRA else "Jira Service Management",
                "groups": [g.name for g in granting],
                "groupDetails": [jira_group(g, base) for g in granting],
                "defaultGroups": [g.name for g in defaults],
                "defaultGroupsDetails": [jira_group(g, base) for g in defaults],
                "selectedByDefault": False,
                "defined": True,
                "numberOfSeats": seats,
                "remainingSeats": max(0, seats - used),
                "userCount": used,
                "userCountDescription": "users",
                "hasUnlimitedSeats": False,
                "platform": False,
            }
        )
    return roles


def jira_status(status: str, base: str) -> dict[str, Any]:
    category = JIRA_CATEGORY[STATUS_CATEGORY[status]]
    return {
        "self": f"{jira_rest(base)}/status/{STATUS_IDS[status]}",
        "description": "",
        "iconUrl": f"{base}/images/icons/statuses/generic.png",
        "name": status,
        "id": STATUS_IDS[status],
        "statusCategory": {"self": f"{jira_rest(base)}/statuscategory/{category['id']}", **category},
    }


def jira_ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def jira_issue(state: OrgState, request: CustomerRequest, fields: set[str], base: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": request.issue_id,
        "key": request.key,
        "self": f"{jira_rest(base)}/issue/{request.issue_id}",
    }
    wanted = fields - {"id", "key"}
    if not wanted:
        return data
    everything = bool(wanted & {"*all", "*navigable"})
    rtype = next(t for t in state.request_types if t["id"] == request.request_type_id)
    desk = next(d for d in state.service_desks if d["id"] == request.service_desk_id)
    available: dict[str, Any] = {
        "summary": request.summary,
        "description": rich_text(request.description),
        "status": jira_status(request.status, base),
        "reporter": jira_user(state, state.users.get(request.reporter), base, request.reporter),
        "created": jira_ts(request.created),
        "updated": jira_ts(request.status_history[-1][1] if request.status_history else request.created),
        "issuetype": {"id": rtype["issueTypeId"], "name": "Service Request"},
        "project": {"id": desk["projectId"], "key": desk["projectKey"], "name": desk["projectName"]},
        "resolution": {"name": "Done"} if request.category == "DONE" else None,
        "customfield_10010": {
            "requestType": {"id": rtype["id"], "name": rtype["name"], "serviceDeskId": desk["id"]}
        },
    }
    data["fields"] = {k: v for k, v in available.items() if everything or k in wanted}
    return data


def jira_transitions(request: CustomerRequest, base: str) -> dict[str, Any]:
    return {
        "expand": "transitions",
        "transitions": [
            {
                "id": tid,
                "name": name,
                "to": jira_status(target, base),
                "hasScreen": False,
                "isGlobal": False,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
            }
            for tid, name, target in JIRA_TRANSITIONS[request.category]
        ],
    }


# ---------------------------------------------------------------------------------------- JSM
def jsm_date(value: datetime) -> dict[str, Any]:
    value = value.astimezone(UTC)
    return {
        "iso8601": value.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "jira": value.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "friendly": value.strftime("%d/%b/%y %I:%M %p"),
        "epochMillis": int(value.timestamp() * 1000),
    }


def jsm_user(state: OrgState, account_id: str, base: str) -> dict[str, Any]:
    live = state.users.get(account_id)
    rest = f"{base}/rest/api/2/user?accountId={quoted_id(account_id)}"
    if live is None:
        return {
            "accountId": account_id,
            "displayName": "Former user",
            "active": False,
            "_links": {"jiraRest": rest, "self": rest},
        }
    user = state.visible(live)
    data: dict[str, Any] = {"accountId": user.account_id}
    if user.email and user.jira_email_visible:
        data["emailAddress"] = user.email
    data.update(
        {
            "displayName": user.name,
            "active": user.account_status == "active",
            "timeZone": user.timezone,
            "_links": {"jiraRest": rest, "avatarUrls": {"48x48": avatar(user.account_id)}, "self": rest},
        }
    )
    return data


def jsm_request_type(rtype: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        **rtype,
        "groupIds": [],
        "restrictionStatus": "OPEN",
        "_links": {
            "self": f"{base}/rest/servicedeskapi/servicedesk/{rtype['serviceDeskId']}"
            f"/requesttype/{rtype['id']}"
        },
    }


def jsm_desk(desk: dict[str, str], base: str) -> dict[str, Any]:
    return {**desk, "_links": {"self": f"{base}/rest/servicedeskapi/servicedesk/{desk['id']}"}}


def jsm_status(status: str, at: datetime) -> dict[str, Any]:
    return {"status": status, "statusCategory": STATUS_CATEGORY[status], "statusDate": jsm_date(at)}


def jsm_comment(state: OrgState, request: CustomerRequest, comment: Any, base: str) -> dict[str, Any]:
    return {
        "id": comment.id,
        "body": comment.body,
        "renderedBody": {"html": f"<p>{html.escape(comment.body)}</p>"},
        "public": comment.public,
        "author": jsm_user(state, comment.author, base),
        "created": jsm_date(comment.created),
        "_links": {"self": f"{base}/rest/servicedeskapi/request/{request.issue_id}/comment/{comment.id}"},
    }


def jsm_request(state: OrgState, request: CustomerRequest, base: str, expand: set[str]) -> dict[str, Any]:
    at = request.status_history[-1][1] if request.status_history else request.created
    data: dict[str, Any] = {
        "_expands": sorted(
            expand
            & {
                "participant",
                "status",
                "sla",
                "requestType",
                "serviceDesk",
                "attachment",
                "action",
                "comment",
            }
        ),
        "issueId": request.issue_id,
        "issueKey": request.key,
        "requestTypeId": request.request_type_id,
        "serviceDeskId": request.service_desk_id,
        "createdDate": jsm_date(request.created),
        "reporter": jsm_user(state, request.reporter, base),
        "requestFieldValues": [
            {"fieldId": "summary", "label": "Summary", "value": request.summary},
            {
                "fieldId": "description",
                "label": "Description",
                "value": request.description,
                "renderedValue": {"html": f"<p>{html.escape(request.description)}</p>"},
            },
        ],
        "currentStatus": jsm_status(request.status, at),
        **({"channel": request.channel} if state.expose_request_channel else {}),
        "_links": {
            "jiraRest": f"{base}/rest/api/2/issue/{request.issue_id}",
            "web": f"{base}/servicedesk/customer/portal/1/{request.key}",
            "agent": f"{base}/browse/{request.key}",
            "self": f"{base}/rest/servicedeskapi/request/{request.issue_id}",
        },
    }
    if "requestType" in expand:
        rtype = next(t for t in state.request_types if t["id"] == request.request_type_id)
        data["requestType"] = jsm_request_type(rtype, base)
    if "serviceDesk" in expand:
        desk = next(d for d in state.service_desks if d["id"] == request.service_desk_id)
        data["serviceDesk"] = jsm_desk(desk, base)
    if "participant" in expand:
        data["participants"] = [jsm_user(state, a, base) for a in request.participants]
    if "status" in expand:
        data["status"] = page_of([jsm_status(s, t) for s, t in request.status_history], 0, 50, "", {})
    if "comment" in expand:
        data["comments"] = page_of(
            [jsm_comment(state, request, c, base) for c in request.comments], 0, 50, "", {}
        )
    return data


def page_of(values: list[Any], start: int, limit: int, url: str, params: dict[str, str]) -> dict[str, Any]:
    """The JSM paged envelope (start/limit/isLastPage/_links)."""
    chunk = values[start : start + limit]
    last = start + limit >= len(values)
    root = url.split("/rest/servicedeskapi")[0] + "/rest/servicedeskapi" if url else ""

    def link(offset: int) -> str:
        query = "&".join(
            f"{k}={quote(str(v), safe='')}" for k, v in {**params, "start": offset, "limit": limit}.items()
        )
        return f"{url}?{query}"

    links: dict[str, Any] = {"base": root, "context": "", "self": link(start) if url else ""}
    if not last and url:
        links["next"] = link(start + limit)
    if start > 0 and url:
        links["prev"] = link(max(0, start - limit))
    return {
        "_expands": [],
        "size": len(chunk),
        "start": start,
        "limit": limit,
        "isLastPage": last,
        "_links": links,
        "values": chunk,
    }
