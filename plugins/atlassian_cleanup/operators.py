"""Operators of the daily cleanup DAG.

They glue hooks (HTTP) to the pure planner and write the log lines admins read: one summary line
per stage with counts, progress lines on long loops, never a token and never a full user dump.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from atlassian_cleanup.progress import ProgressLog

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.policy import Policy

MODE_DRY_RUN = "dry_run"
MODE_LIVE = "live"


def resolve_policy(policy_path: str, params: Mapping[str, Any] | None) -> Policy:
    """Load the policy file and apply this run's DAG params; raise a clear failure when invalid.

    Raised as :class:`AirflowFailException` so Airflow does not retry a run whose configuration is
    wrong: retrying cannot fix a typo, it only delays the message the admin needs to see.
    """
    from atlassian_cleanup.policy import PolicyError, apply_overrides, load_policy

    try:
        policy = load_policy(policy_path)
        return apply_overrides(policy, dict(params or {}))
    except FileNotFoundError as exc:
        raise AirflowFailException(
            f"Policy file {policy_path} not found. Create it (copy include/policy.yaml) or set "
            "ATLASSIAN_CLEANUP_POLICY to its path."
        ) from exc
    except PolicyError as exc:
        raise AirflowFailException(
            f"Invalid policy ({policy_path}); nothing was called or changed:\n{exc}"
        ) from exc


def run_as_of(context: Context) -> datetime:
    """ "Today" for this run: the logical date, or the run-after time for runs without one."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return datetime.fromtimestamp(moment.timestamp(), tz=UTC)


def mode_of(policy: Policy) -> str:
    return MODE_DRY_RUN if policy.dry_run else MODE_LIVE


def require_dry_run(policy: Policy) -> None:
    """Refuse live mode until the state store exists.

    Writes without a journal could warn or suspend someone twice after a retry; the enforcement
    work (state store, journal, caps) has to land before ``dry_run: false`` is accepted.
    """
    if not policy.dry_run:
        raise AirflowFailException(
            "dry_run is false, but this version only supports dry runs: live enforcement needs the "
            "state store and safety gates, which are not installed yet. Set dry_run: true in the "
            "policy (or the run's dry_run param) to plan and audit without changing anything."
        )


class ExtractUsersOperator(BaseOperator):
    """Pull every directory user with per-product last-active data in bulk.

    One paginated ``POST .../directories/{id}/users/search`` with ``expand=productAccess,groups,
    platformRoles`` replaces a per-user ``last-active-dates`` loop. When a site connection is given,
    Jira's user list is crossed with it: the v2 Admin API only documents ``accountType: atlassian``,
    so bots and portal customers are recognised from Jira's ``accountType`` too.

    :param policy_path: policy YAML, validated (with the run's params) before any API call.
    :param admin_conn_id: Airflow connection of the org Admin API (Bearer API key).
    :param site_conn_id: Airflow connection of the Jira site (Basic email + API token), or None.
    """

    template_fields: Sequence[str] = ("policy_path", "admin_conn_id", "site_conn_id")
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        policy_path: str,
        admin_conn_id: str = "atlassian_admin",
        site_conn_id: str | None = "atlassian_site",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.policy_path = policy_path
        self.admin_conn_id = admin_conn_id
        self.site_conn_id = site_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.hooks import AtlassianAdminHook
        from atlassian_cleanup.records import user_record_from_jira, user_record_from_v2

        policy = resolve_policy(self.policy_path, context["params"])
        require_dry_run(policy)
        started = time.monotonic()
        progress = ProgressLog(self.log, "extract_users: directory users")
        users: list[dict[str, Any]] = []
        with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
            for raw in admin.iter_directory_users(
                on_page=lambda _page, count: progress.update(count),
            ):
                users.append(dict(user_record_from_v2(raw)))
            directory_id = admin.directory_id
        progress.update(len(users), force=True)

        retyped = added = 0
        if self.site_conn_id:
            site_accounts = self._site_accounts()
            in_directory = {user["account_id"] for user in users}
            for user in users:
                site_type = site_accounts.get(user["account_id"], {}).get("accountType")
                if site_type in ("app", "customer") and user["account_type"] != site_type:
                    user["account_type"] = site_type
                    retyped += 1
            for account_id, site_user in site_accounts.items():
                if account_id not in in_directory:
                    users.append(dict(user_record_from_jira(site_user)))
                    added += 1

        statuses = Counter(user["status"] for user in users)
        types = Counter(user["account_type"] for user in users)
        never = sum(1 for user in users if not user["last_active"])
        self.log.info(
            "extract_users: %d users from directory %s in %.1fs; status %s; account types %s; "
            "%d never active; %d re-typed and %d added (not in the directory) from Jira's user list",
            len(users),
            directory_id,
            time.monotonic() - started,
            dict(sorted(statuses.items())),
            dict(sorted(types.items())),
            never,
            retyped,
            added,
        )
        if not users:
            raise AirflowFailException(
                "extract_users: the directory returned no users. Check that the connection's org_id "
                "and directory_id point at the right organisation; nothing was planned."
            )
        return users

    def _site_accounts(self) -> dict[str, dict[str, Any]]:
        from atlassian_cleanup.hooks import AtlassianSiteHook

        progress = ProgressLog(self.log, "extract_users: Jira accounts")
        accounts: dict[str, dict[str, Any]] = {}
        with AtlassianSiteHook(atlassian_site_conn_id=self.site_conn_id) as site:
            for user in site.iter_users(on_page=lambda _page, count: progress.update(count)):
                accounts[str(user["accountId"])] = user
        progress.update(len(accounts), force=True)
        return accounts


class ComputeInactivityOperator(BaseOperator):
    """Plan who is inactive and what happens to them, as of the run's logical date.

    The decision itself is :func:`atlassian_cleanup.planner.plan_actions`, a pure function; this
    operator only feeds it and logs the outcome. The API user (the site connection's login) is
    passed as protected so the tool can never lock itself out.
    """

    template_fields: Sequence[str] = ("users", "policy_path", "site_conn_id")
    ui_color = "#eae6ff"

    def __init__(
        self,
        *,
        users: Any,
        policy_path: str,
        site_conn_id: str | None = "atlassian_site",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.users = users
        self.policy_path = policy_path
        self.site_conn_id = site_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.planner import plan_actions, plan_to_records, summarise_plan

        policy = resolve_policy(self.policy_path, context["params"])
        as_of = run_as_of(context)
        api_user_emails = []
        if self.site_conn_id:
            login = BaseHook.get_connection(self.site_conn_id).login
            if login:
                api_user_emails.append(login)
        started = time.monotonic()
        plan = plan_actions(self.users, policy, as_of, api_user_emails=api_user_emails)
        summary = summarise_plan(plan)
        self.log.info(
            "compute_inactivity: as of %s (%s) planned %d users in %.2fs: %s",
            as_of.date().isoformat(),
            mode_of(policy),
            len(plan),
            time.monotonic() - started,
            _format_summary(summary),
        )
        return plan_to_records(plan)


def _format_summary(summary: Mapping[str, Any]) -> str:
    parts = []
    for key, value in summary.items():
        if isinstance(value, Mapping):
            inner = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            parts.append(f"{key}: {inner or 'none'}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


class _DryRunStageOperator(BaseOperator):
    """A stage that, in this version, logs exactly what it would do to each planned user.

    :param plan: the plan records from ``compute_inactivity``.
    :param max_user_lines: per-user lines to log before summarising the rest (the full list is in
        the audit CSV; a 100k-user org must not turn a task log into a user dump).
    """

    template_fields: Sequence[str] = ("plan", "policy_path")
    stage_actions: ClassVar[frozenset[str]] = frozenset()
    stage_name: ClassVar[str] = ""

    def __init__(self, *, plan: Any, policy_path: str, max_user_lines: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.policy_path = policy_path
        self.max_user_lines = max_user_lines

    def describe(self, row: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, str]:
        policy = resolve_policy(self.policy_path, context["params"])
        require_dry_run(policy)
        selected = [row for row in self.plan if row.get("proposed_action") in self.stage_actions]
        outcomes: dict[str, str] = {}
        for index, row in enumerate(selected):
            line = self.describe(row)
            outcomes[row["account_id"]] = f"dry run: would {line}"
            if index < self.max_user_lines:
                self.log.info("%s (dry run): would %s", self.stage_name, line)
        if len(selected) > self.max_user_lines:
            self.log.info(
                "%s (dry run): %d more users not listed here; see the audit CSV",
                self.stage_name,
                len(selected) - self.max_user_lines,
            )
        kinds = Counter(row["proposed_action"] for row in selected)
        self.log.info(
            "%s (dry run): %d users planned (%s); nothing was changed in Atlassian",
            self.stage_name,
            len(selected),
            ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none",
        )
        return outcomes


def _who(row: Mapping[str, Any]) -> str:
    return f"{row['account_id']} ({row.get('name') or 'no name'})"


class NotifyWarningsOperator(_DryRunStageOperator):
    """Warn users who are about to lose access (dry run: log who and when)."""

    stage_actions = frozenset({"warn"})
    stage_name = "notify_warnings"
    ui_color = "#fffae6"

    def describe(self, row: Mapping[str, Any]) -> str:
        return (
            f"email {_who(row)}: access ends on {row.get('action_date')} "
            f"({row.get('warning_lead_days')}-day warning) — {row.get('reason')}"
        )


class ApplyActionsOperator(_DryRunStageOperator):
    """Suspend, deactivate or remove product access (dry run: log the exact call per user)."""

    stage_actions = frozenset({"suspend", "deactivate", "remove_product_access"})
    stage_name = "apply_actions"
    ui_color = "#ffebe6"

    def describe(self, row: Mapping[str, Any]) -> str:
        action = row["proposed_action"]
        if action == "remove_product_access":
            products = ", ".join(row.get("products_to_remove") or [])
            return f"remove {products} access from {_who(row)} — {row.get('reason')}"
        return f"{action} {_who(row)} — {row.get('reason')}"


class DeleteDormantOperator(_DryRunStageOperator):
    """Delete accounts this tool actioned long enough ago (dry run: log who)."""

    stage_actions = frozenset({"delete"})
    stage_name = "delete_dormant"
    ui_color = "#ff8f73"

    def describe(self, row: Mapping[str, Any]) -> str:
        return f"delete {_who(row)} (Atlassian keeps it cancellable for 14 days) — {row.get('reason')}"


class ExportAuditOperator(BaseOperator):
    """Write the audit CSV and manifest, and record them on the audit Asset.

    :param plan: plan records from ``compute_inactivity``.
    :param outcomes: the per-user outcome maps returned by the three action stages.
    :param audit_dir: directory the CSVs go to (shared with the api-server that serves them).
    """

    template_fields: Sequence[str] = ("plan", "outcomes", "audit_dir", "policy_path")
    ui_color = "#e3fcef"

    def __init__(
        self,
        *,
        plan: Any,
        outcomes: Any,
        audit_dir: str,
        policy_path: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.outcomes = outcomes
        self.audit_dir = audit_dir
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from atlassian_cleanup.audit import write_audit

        policy = resolve_policy(self.policy_path, context["params"])
        outcome_by_account: dict[str, str] = {}
        for stage_outcomes in _as_list(self.outcomes):
            outcome_by_account.update(stage_outcomes or {})
        summary = _plan_summary(self.plan)
        rows = (
            {**row, "outcome": outcome_by_account.get(row["account_id"], "no action")} for row in self.plan
        )
        manifest = write_audit(
            rows,
            Path(self.audit_dir),
            run_id=context["run_id"],
            as_of=run_as_of(context).date().isoformat(),
            mode=mode_of(policy),
            summary=summary,
        )
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "path": manifest.csv_path,
                "rows": manifest.rows,
                "sha256": manifest.sha256,
                "mode": manifest.mode,
            }
        self.log.info(
            "export_audit: wrote %d rows to %s (sha256 %s, %s)",
            manifest.rows,
            manifest.csv_path,
            manifest.sha256,
            manifest.mode,
        )
        return manifest.to_dict()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str):
        return list(value)
    return [value]


def _plan_summary(plan: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    actions = Counter(row.get("proposed_action") or "none" for row in plan)
    protected = Counter(str(row["protected_by"]).split(":", 1)[0] for row in plan if row.get("protected_by"))
    return {
        "users": len(plan),
        "proposed_actions": dict(sorted(actions.items())),
        "protected": sum(protected.values()),
        "protected_by_kind": dict(sorted(protected.items())),
    }
