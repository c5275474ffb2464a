"""Sandbox configuration: the seed parameters plus every behavioural knob.

Knobs exist for the parts of the Atlassian contract that are unconfirmed (marked ``[?]`` in
``atlassian-api.md``) so tests can pin our client against each plausible behaviour, and for the
failure modes (rate limits, chaos, latency) the hooks must survive.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

#: Fields that define the generated org; changing them means regenerating (``/_sim/reset``).
SEED_FIELDS = ("users", "seed", "as_of")
#: Fields fixed for the server's lifetime.
STARTUP_FIELDS = ("host", "port", "log_level")
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@dataclass
class SandboxConfig:
    # --- seed -------------------------------------------------------------------------------
    users: int = 300
    seed: int = 42
    as_of: date = date(2026, 11, 26)

    # --- server -----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "warning"

    # --- credentials (fixed demo values; never real secrets) --------------------------------
    admin_api_key: str = "sandbox-admin-key"
    site_email: str = "automation@acme.example"
    site_token: str = "sandbox-site-token"

    # --- unconfirmed Atlassian behaviours ---------------------------------------------------
    # v2 docs use ``jira``/``confluence``; v1 and Jira use ``jira-software``/``jira-servicedesk``.
    product_key_style: str = "v2"  # "v2" | "v1"
    # A product the user may use but never opened: no entry (the contract, §3.6 / §9.2), or an
    # entry with a null timestamp (the other plausible reading, kept to pin clients against it).
    never_used_product_entry: str = "absent"  # "absent" | "null"
    # The v1 suspend endpoint moved from 204 to 200 + message in 2023; v2 is undocumented.
    suspend_restore_success_code: int = 204  # 204 | 200
    # Older lifecycle docs show ``200 {"message": "Success"}`` for delete.
    lifecycle_delete_success_code: int = 204  # 204 | 200
    # v2 ``accountType`` enum lists only ``atlassian``: bots may be missing from the directory.
    apps_in_directory_search: bool = True
    # A collapsed or narrowed directory listing: the v2 directory user listing/search returns at
    # most this many users (None = all). Jira's user list is unaffected.
    directory_search_max_users: int | None = None
    # Share (0-1) of the directory users who are also members of a second directory synced from an
    # identity provider (atlassian_sandbox.directories); 0 = the org has one directory.
    idp_directory_share: float = 0.0
    # Whether the v2 cursor page omits ``links.next`` or sends ``"next": null`` on the last page.
    v2_last_page_next: str = "absent"  # "absent" | "null"
    v1_page_size: int = 100
    # Writes through the ``-`` (all directories) alias are undocumented; reject by default.
    allow_dash_directory_writes: bool = False
    # Product key (v1 style: jira-software, confluence, jira-servicedesk) -> seat cap override.
    seat_caps: dict[str, int] = field(default_factory=dict)
    deletion_grace_days: int = 14
    # JSM e-mail channel (``POST /_sim/jsm/email``): what happens to mail from an address no
    # Atlassian account has. Atlassian: "anyone can email" projects turn the sender into a new
    # portal-only customer; projects whose customers are added by an agent do not process it.
    jsm_email_unknown_sender: str = "reject"  # "reject" | "create_customer"
    # The request channel (portal | email | api) is not in the documented CustomerRequest shape;
    # when on, JSM request objects carry it as ``"channel"``.
    jsm_request_channel: bool = False

    # --- performance / failure injection ------------------------------------------------------
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rate_limit_enabled: bool = False
    rate_limit_per_second: float = 10.0
    rate_limit_burst: int = 20
    # Per-endpoint rates (requests/s), keyed "<METHOD> <route template>" as the sandbox's routes
    # spell it (GET /_sim/config lists them under ``endpoints``); others use
    # rate_limit_per_second. Atlassian publishes no Admin API numbers (§7.1), so any figure is an
    # assumption: scripts document ~200/min on last-active-dates, for example.
    rate_limit_endpoints: dict[str, float] = field(default_factory=dict)
    admin_retry_after: bool = True  # Admin 429s: send Retry-After besides X-RateLimit-Reset
    admin_reset_format: str = "minute"  # "minute" (observed 2023-10-11T10:15Z) | "second"
    chaos_seed: int = 0
    chaos_429: float = 0.0
    chaos_503: float = 0.0
    chaos_500: float = 0.0
    chaos_drop_before: float = 0.0
    chaos_drop_after: float = 0.0
    chaos_retry_after: int = 1
    chaos_path_regex: str | None = None  # only inject where re.search(regex, path) matches
    chaos_methods: list[str] | None = None  # only inject for these HTTP methods (e.g. ["POST"])
    # Delay (ms) before a write becomes visible in user reads and JQL search.
    eventual_consistency_ms: float = 0.0
    call_log_max: int = 100_000

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data

    def update(
        self,
        values: dict[str, Any],
        *,
        allow_seed: bool = False,
        endpoints: frozenset[str] | None = None,
    ) -> list[str]:
        """Apply knob values; returns the names changed. Raises ValueError on bad input.

        All or nothing: the values are checked on a copy, so a bad one leaves every knob as it was.

        :param endpoints: the route keys (``"<METHOD> <template>"``) ``rate_limit_endpoints`` may name.
        """
        known = {f.name: f for f in dataclasses.fields(self)}
        candidate = dataclasses.replace(self)
        changed = []
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}")
            if name in SEED_FIELDS and not allow_seed:
                raise ValueError(f"{name!r} regenerates the org: use POST /_sim/reset")
            try:
                setattr(candidate, name, _coerce(name, value, getattr(candidate, name)))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from exc
            changed.append(name)
        candidate.validate(endpoints)
        for name in changed:
            setattr(self, name, getattr(candidate, name))
        return changed

    def validate(self, endpoints: frozenset[str] | None = None) -> None:
        if self.product_key_style not in ("v1", "v2"):
            raise ValueError("product_key_style must be 'v1' or 'v2'")
        if self.never_used_product_entry not in ("null", "absent"):
            raise ValueError("never_used_product_entry must be 'null' or 'absent'")
        if self.suspend_restore_success_code not in (200, 204):
            raise ValueError("suspend_restore_success_code must be 200 or 204")
        if self.lifecycle_delete_success_code not in (200, 204):
            raise ValueError("lifecycle_delete_success_code must be 200 or 204")
        if self.v2_last_page_next not in ("absent", "null"):
            raise ValueError("v2_last_page_next must be 'absent' or 'null'")
        if self.jsm_email_unknown_sender not in ("reject", "create_customer"):
            raise ValueError("jsm_email_unknown_sender must be 'reject' or 'create_customer'")
        if self.admin_reset_format not in ("minute", "second"):
            raise ValueError("admin_reset_format must be 'minute' or 'second'")
        for name in ("chaos_429", "chaos_503", "chaos_500", "chaos_drop_before", "chaos_drop_after"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        if self.users < 0:
            raise ValueError("users must be >= 0")
        if not 0.0 <= self.idp_directory_share <= 1.0:
            raise ValueError("idp_directory_share must be between 0 and 1 (a share of the directory users)")
        if self.directory_search_max_users is not None and self.directory_search_max_users < 0:
            raise ValueError("directory_search_max_users must be >= 0 (or null for no limit)")
        if self.v1_page_size < 1 or self.rate_limit_burst < 1 or self.rate_limit_per_second <= 0:
            raise ValueError("page size, burst and rate must be positive")
        for key, rate in self.rate_limit_endpoints.items():
            method, _, template = key.partition(" ")
            if method not in HTTP_METHODS or not template.startswith("/"):
                raise ValueError(
                    f"rate_limit_endpoints key {key!r} must be '<METHOD> <route template>', "
                    "e.g. 'GET /admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates'"
                )
            if endpoints is not None and key not in endpoints:
                raise ValueError(
                    f"rate_limit_endpoints: no route {key!r} "
                    "(GET /_sim/config lists the routes under 'endpoints')"
                )
            if not rate > 0:
                raise ValueError(f"rate_limit_endpoints[{key!r}] must be a positive number of requests/s")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> SandboxConfig:
        config = cls()
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        config.update({**data, **overrides}, allow_seed=True)
        return config


def _endpoint_key(key: str) -> str:
    method, _, template = key.strip().partition(" ")
    return f"{method.upper()} {template.strip()}"


def _coerce(name: str, value: Any, current: Any) -> Any:
    if name == "directory_search_max_users":  # optional: None (no limit) or a count
        return None if value is None else int(value)
    if name == "as_of":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if name == "rate_limit_endpoints":
        if not isinstance(value, dict):
            raise ValueError('expected an object {"<METHOD> <route template>": requests per second}')
        return {_endpoint_key(str(k)): float(v) for k, v in value.items()}
    if name == "seat_caps":
        return {str(k): int(v) for k, v in dict(value or {}).items()}
    if name == "chaos_methods":
        return [str(m).upper() for m in value] if value else None
    return value
