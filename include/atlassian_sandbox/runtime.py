"""The live sandbox: config, current org state, limiter, chaos, call log and cursor snapshots."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from atlassian_sandbox.config import SandboxConfig
from atlassian_sandbox.directories import set_idp_directory
from atlassian_sandbox.limits import Chaos, TokenBucketLimiter
from atlassian_sandbox.seed import generate_org
from atlassian_sandbox.state import OrgState


class BadCursor(ValueError):
    pass


class CursorStore:
    """Filtered id lists behind opaque cursors.

    Paging 100k users must not re-filter the org per page, so the first page stores the matching
    ids and later pages slice them. The cursor also carries the query, so an evicted snapshot is
    rebuilt instead of failing the client halfway through a listing.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._lock = threading.Lock()
        self._snapshots: OrderedDict[str, list[str]] = OrderedDict()
        self._capacity = capacity
        self._counter = 0

    def store(self, ids: list[str]) -> str:
        with self._lock:
            self._counter += 1
            snap_id = f"{self._counter:x}"
            self._snapshots[snap_id] = ids
            while len(self._snapshots) > self._capacity:
                self._snapshots.popitem(last=False)
            return snap_id

    def get(self, snap_id: str) -> list[str] | None:
        with self._lock:
            ids = self._snapshots.get(snap_id)
            if ids is not None:
                self._snapshots.move_to_end(snap_id)
            return ids

    def clear(self) -> None:
        with self._lock:
            self._snapshots.clear()

    @staticmethod
    def encode(kind: str, snap_id: str, offset: int, query: dict[str, Any]) -> str:
        raw = json.dumps(
            {"k": kind, "s": snap_id, "o": offset, "q": query}, separators=(",", ":"), sort_keys=True
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(kind: str, token: str) -> tuple[str, int, dict[str, Any]]:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if data["k"] != kind or not isinstance(data["o"], int) or data["o"] < 0:
                raise BadCursor(token)
            return str(data["s"]), data["o"], dict(data["q"])
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise BadCursor(token) from exc

    def page(
        self,
        kind: str,
        cursor: str | None,
        query: dict[str, Any],
        build: Callable[[dict[str, Any]], list[str]],
        limit: int,
    ) -> tuple[list[str], str, str | None, str | None]:
        """Returns (ids on this page, self token, prev token, next token)."""
        if cursor:
            snap_id, offset, query = self.decode(kind, cursor)
            ids = self.get(snap_id)
            if ids is None:
                ids = build(query)
                snap_id = self.store(ids)
        else:
            offset = 0
            ids = build(query)
            snap_id = self.store(ids)
        page = ids[offset : offset + limit]
        self_token = self.encode(kind, snap_id, offset, query)
        prev_token = self.encode(kind, snap_id, max(0, offset - limit), query) if offset > 0 else None
        next_token = self.encode(kind, snap_id, offset + limit, query) if offset + limit < len(ids) else None
        return page, self_token, prev_token, next_token


class CallLog:
    def __init__(self, maxlen: int) -> None:
        self._lock = threading.Lock()
        self._calls: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._calls.append(entry)
            return entry

    def since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            calls = [dict(c) for c in self._calls if c["seq"] > seq]
        return calls[:limit] if limit else calls

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    @property
    def last_seq(self) -> int:
        return self._seq


class Runtime:
    def __init__(self, config: SandboxConfig) -> None:
        config.validate()
        self.config = config
        self.limiter = TokenBucketLimiter()
        self.chaos = Chaos(config.chaos_seed)
        self.calls = CallLog(config.call_log_max)
        self.cursors = CursorStore()
        self.base_url = ""  # set once the server knows its port
        #: "<METHOD> <template>" of every rate-limited route; set by create_app.
        self.endpoints: frozenset[str] | None = None
        self.started = time.time()
        self.state: OrgState = self._generate()

    def _generate(self) -> OrgState:
        state = generate_org(
            self.config.users, self.config.seed, self.config.as_of, api_email=self.config.site_email
        )
        self._apply_to_state(state)
        return state

    def _apply_to_state(self, state: OrgState) -> None:
        state.seat_overrides = dict(self.config.seat_caps)
        set_idp_directory(state, self.config.idp_directory_share)
        state.consistency_delay_s = self.config.eventual_consistency_ms / 1000.0
        state.deletion_grace_days = self.config.deletion_grace_days
        state.email_unknown_sender = self.config.jsm_email_unknown_sender
        state.expose_request_channel = self.config.jsm_request_channel

    def reset(
        self, users: int | None = None, seed: int | None = None, as_of: date | str | None = None
    ) -> OrgState:
        values: dict[str, Any] = {}
        if users is not None:
            values["users"] = users
        if seed is not None:
            values["seed"] = seed
        if as_of is not None:
            values["as_of"] = as_of
        self.config.update(values, allow_seed=True)
        state = self._generate()
        self.state = state
        self.cursors.clear()
        self.limiter.reset()
        self.chaos.reseed(self.config.chaos_seed)
        return state

    def configure(self, values: dict[str, Any]) -> list[str]:
        changed = self.config.update(values, endpoints=self.endpoints)
        if "chaos_seed" in changed:
            self.chaos.reseed(self.config.chaos_seed)
        if any(name.startswith("rate_limit") for name in changed):
            self.limiter.reset()
        with self.state.lock:
            self._apply_to_state(self.state)
        return changed

    def info(self) -> dict[str, Any]:
        state = self.state
        return {
            "org_id": state.org_id,
            "org_name": state.org_name,
            "directory_id": state.directory_id,
            "cloud_id": state.cloud_id,
            "admin_api_key": self.config.admin_api_key,
            "site_email": self.config.site_email,
            "site_token": self.config.site_token,
            "api_account_id": state.api_account_id,
            "as_of": state.as_of.isoformat(),
            "now": state.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "users": self.config.users,
            "seed": self.config.seed,
            "base_url": self.base_url,
            "resources": {key: r.ari for key, r in state.resources.items()},
            "groups": {g.name: g.id for g in (state.groups[i] for i in state.group_order)},
            "service_desk_id": state.service_desks[0]["id"] if state.service_desks else None,
            "restore_request_type_id": next(
                (t["id"] for t in state.request_types if t["name"] == "Restore my access"), None
            ),
        }


def parse_datetime(value: str) -> datetime:
    """An ISO-8601 time as UTC; one without an offset is taken as UTC (Python 3.11 reads ``Z``)."""
    parsed = datetime.fromisoformat(value.strip())
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
