"""A loopback HTTP server that answers whatever a test scripts: the hostile half of Atlassian.

The sandbox models Atlassian faithfully; this one is for answers Atlassian should never give but
sometimes does (HTML error pages, cut bodies, cursor loops, echoed headers, absurd waits). Each
request is handed to ``script(request)``, which returns a :class:`Reply`; every request is recorded.
Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADMIN_KEY = "hostile-admin-key-0123456789"
SITE_EMAIL = "automation@acme.example"
SITE_TOKEN = "hostile-site-token-ABCDEFGHIJ"
ORG = "org-1"
DIRECTORY = "dir-1"
SEARCH = f"/admin/v2/orgs/{ORG}/directories/{DIRECTORY}/users/search"
#: The one group every scripted user is in, granting Jira (extraction reads access from groups).
GROUP = {"id": "grp-jira", "name": "jira-software-users", "counts": {"resources": 1}}
GROUP_SEARCH = f"/admin/v2/orgs/{ORG}/directories/{DIRECTORY}/groups/search"
GROUP_ROLES = f"/admin/v2/orgs/{ORG}/directories/{DIRECTORY}/groups/{GROUP['id']}/role-assignments"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    seen: int  # how many requests to this method + path came before this one

    @property
    def cursor(self) -> str | None:
        if isinstance(self.body, dict):
            return self.body.get("cursor")
        return (self.query.get("cursor") or [None])[0]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict / list: JSON; str / bytes: sent as-is
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    cut_after: int | None = None  # announce the full length, send this many bytes, close


NOT_FOUND = Reply(404, {"errors": [{"code": "ADMIN-404-1", "title": "Not found"}]})


def groups_reply(request: Request) -> Reply | None:
    """The well-behaved answer to the group reads extraction starts with, or None for other paths."""
    if request.path == GROUP_SEARCH:
        return Reply(body=page([GROUP]))
    if request.path == GROUP_ROLES:
        grant = {
            "resourceId": "ari:cloud:jira-software::site/site-1",
            "resourceOwner": "jira-software",
            "roleAssignments": [{"role": "atlassian/user", "roleAssignmentMethods": ["direct"]}],
        }
        return Reply(body=page([grant]))
    return None


def page(users: list[Any] | None, cursor: str | None = None, **extra: Any) -> dict[str, Any]:
    """One v2 page: ``data`` and ``links.next`` (absent on the last page)."""
    body: dict[str, Any] = {"data": users, "links": {"next": cursor} if cursor else {}}
    body.update(extra)
    return body


def user(account_id: str, **extra: Any) -> dict[str, Any]:
    """A v2 directory user as ``users/search`` returns it."""
    return {
        "accountId": account_id,
        "accountType": "atlassian",
        "status": "active",
        "email": f"{account_id}@acme.example",
        "name": account_id,
        "productAccess": [{"key": "jira-software", "lastActiveTimestamp": "2026-01-01T00:00:00Z"}],
        "groups": [{"id": GROUP["id"], "name": GROUP["name"]}],
        **extra,
    }


class FakeAtlassian:
    """``with FakeAtlassian(script) as fake: ... fake.url ... fake.calls``."""

    def __init__(self, script: Callable[[Request], Reply], *, groups: bool = True) -> None:
        """:param groups: answer the group reads extraction starts with (one group granting Jira)
        before the script sees a request; the hostile part of a case is in the script."""
        self.script = script
        self.groups = groups
        self.calls: list[Request] = []
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                split = urlsplit(self.path)
                with fake._lock:
                    seen = fake._counts[(self.command, split.path)]
                    fake._counts[(self.command, split.path)] += 1
                    request = Request(
                        self.command, split.path, parse_qs(split.query), body, dict(self.headers), seen
                    )
                    fake.calls.append(request)
                reply = (groups_reply(request) if fake.groups else None) or fake.script(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if isinstance(reply.body, dict | list):
                    payload = json.dumps(reply.body).encode()
                    content_type = reply.content_type or "application/json"
                elif reply.body is None:
                    payload, content_type = b"", reply.content_type
                else:
                    payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                    content_type = reply.content_type
                try:
                    self.send_response(reply.status)
                    if content_type:
                        self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if reply.cut_after is not None:
                        self.wfile.write(payload[: reply.cut_after])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-atlassian", daemon=True)

    def __enter__(self) -> FakeAtlassian:
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[Request]:
        """Calls that would change something in Atlassian (searches are reads)."""
        return [
            c for c in self.calls if c.method != "GET" and not c.path.endswith(("/search", "/search/jql"))
        ]

    def connections(
        self, *, timeout: list[float] | None = None, retry: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """Airflow connection env vars (``AIRFLOW_CONN_*``) pointing the hooks at this server."""
        extra: dict[str, Any] = {"timeout": timeout or [2.0, 2.0]}
        extra["retry"] = retry or {"base_delay": 0.01, "max_backoff": 0.05, "max_attempts": 3}
        admin = {
            "conn_type": "http",
            "host": self.url,
            "password": ADMIN_KEY,
            "extra": {"org_id": ORG, "directory_id": DIRECTORY, **extra},
        }
        site = {
            "conn_type": "http",
            "host": self.url,
            "login": SITE_EMAIL,
            "password": SITE_TOKEN,
            "extra": extra,
        }
        return {
            "AIRFLOW_CONN_ATLASSIAN_ADMIN": json.dumps(admin),
            "AIRFLOW_CONN_ATLASSIAN_SITE": json.dumps(site),
        }


class Directory:
    """A script with state: active users ``u1``..``u<count>``; suspend works unless a case changes it.

    :param search: answers the user search instead (``None`` from it = the normal answer).
    :param suspend: ``suspend(directory, account_id, request) -> Reply`` instead of the normal 204.
    """

    def __init__(
        self,
        *,
        count: int = 2,
        search: Callable[[Request], Reply | None] | None = None,
        suspend: Any = None,
    ) -> None:
        self.status = {f"u{i}": "active" for i in range(1, count + 1)}
        self.search = search
        self.suspend = suspend

    def __call__(self, request: Request) -> Reply:
        if request.path == SEARCH:
            custom = self.search(request) if self.search else None
            if custom is not None:
                return custom
            wanted = (request.body or {}).get("accountIds") or list(self.status)
            found = [user(a, status=self.status[a]) for a in wanted if a in self.status]
            return Reply(body=page(found))
        if request.path.endswith("/suspend"):
            account_id = request.path.split("/")[-2]
            if self.suspend is not None:
                return self.suspend(self, account_id, request)
            self.status[account_id] = "suspended"
            return Reply(204)
        return NOT_FOUND


def rows(*account_ids: str) -> list[dict[str, Any]]:
    """Plan rows suspending these users, shaped as the planner writes them."""
    from atlassian_cleanup.decisions.records import user_record_from_v2

    planned = []
    for account_id in account_ids:
        record = user_record_from_v2(user(account_id))
        planned.append(
            {
                "account_id": account_id,
                "email": record["email"],
                "name": record["name"],
                "status": "active",
                "product_last_active": json.dumps(record["product_access"], sort_keys=True),
                "days_inactive": 300,
                "proposed_action": "suspend",
                "planned_action": "suspend",
                "products_to_remove": [],
                "warning_lead_days": None,
                "action_date": "2026-11-26",
                "reason": "hostile-api test",
                "rule": "inactive_all_products",
            }
        )
    return planned
