"""Operators of the self-service restore DAG (``atlassian_access_restoration``).

``fetch_requests (JSM) ─► evaluate_rules (domain / group) ─► restore_access ─► comment_and_resolve
─► export_audit``. The decisions are pure (:mod:`atlassian_cleanup.restore.rules`); the writes,
exactly once per request, go through the journalled write path
(:mod:`atlassian_cleanup.restore.carry_out`). These operators are the Airflow glue.

Logs carry counts and request keys, never tokens, request texts or whole user lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from atlassian_cleanup.actions.journalled import Journal
from atlassian_cleanup.client.retry import StopsAtlassianCallsOnKill
from atlassian_cleanup.decisions.policy_params import RESTORE_ACCOUNTS, RESTORE_REASON
from atlassian_cleanup.operators.cleanup import (
    announce_audit,
    as_list,
    failed_upstream_tasks,
    mode_of,
    open_state_store,
    policy_of_run,
    resolve_large_input,
    resolve_optional_input,
    run_as_of,
    run_record,
    start_run_policy,
    wire_large_input,
)
from atlassian_cleanup.progress import counts_in_words
from atlassian_cleanup.restore.approval import AWAITING_APPROVAL, approval_state
from atlassian_cleanup.restore.carry_out import RestoreWriter, find_by_emails, read_accounts
from atlassian_cleanup.restore.on_demand import (
    OnDemandError,
    is_on_demand,
    on_demand_requests,
    read_form,
    resolve_entries,
    unrestorable,
    wants_on_demand,
)
from atlassian_cleanup.restore.rules import (
    DEFERRED,
    DELETED,
    NOT_ACTIONED,
    REMOVED,
    RESTORE,
    RestoreRequest,
    decide,
    decision_from_dict,
    request_from_issue,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.decisions.policy import Policy

#: The v2 user search takes at most this many account ids per call.
_MAX_LINES = 200


def _jql_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def journal_of_run(store: StateStore, context: Context) -> Journal:
    """The run's journalled write path (its writes are timed at the run's logical date)."""
    return Journal(store, run_id=context["run_id"], at=run_as_of(context))


class FetchRestoreRequestsOperator(StopsAtlassianCallsOnKill, BaseOperator):
    """Find the open restore requests through ``POST /rest/api/3/search/jql`` (nextPageToken paging).

    The service desk (id or project key) and the request type (name or id) come from the policy;
    a numeric id is turned into the project key / type name JQL needs. Returns one small dict per
    request (key, reporter, summary, created, status); the description is never read, because only
    the reporter's own account may be restored.

    As the run's first task it resolves the run's policy once (file, params, conf keys checked)
    and publishes it as the ``policy`` XCom the later tasks use (see
    :func:`~atlassian_cleanup.operators.cleanup.start_run_policy`).
    """

    template_fields: Sequence[str] = ("policy_path", "site_conn_id", "admin_conn_id")
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        policy_path: str,
        site_conn_id: str = "atlassian_site",
        admin_conn_id: str = "atlassian_admin",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.policy_path = policy_path
        self.site_conn_id = site_conn_id
        self.admin_conn_id = admin_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.client.hooks import AtlassianSiteHook

        policy, record = start_run_policy(self, self.policy_path, context)
        params = context["params"]
        try:
            on_demand = wants_on_demand(params.get(RESTORE_ACCOUNTS), params.get(RESTORE_REASON))
        except OnDemandError as exc:
            raise AirflowFailException(str(exc)) from None
        if on_demand:
            return self.on_demand(context, policy, record)
        with AtlassianSiteHook(atlassian_site_conn_id=self.site_conn_id) as site:
            jql = self.build_jql(site, policy)
            self.log.info("fetch_requests: JQL %s", jql)
            requests = [
                request_from_issue(issue).to_dict()
                for issue in site.iter_jql(jql, fields=("summary", "status", "reporter", "created"))
            ]
        self.log.info("fetch_requests: %d open restore requests", len(requests))
        return requests

    def on_demand(self, context: Context, policy: Policy, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The accounts named in the trigger form, each checked against the directory; JSM is not read."""
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        params = context["params"]
        try:
            entries, problems = read_form(
                params.get(RESTORE_ACCOUNTS), params.get(RESTORE_REASON), policy.restore.max_restores_per_run
            )
            with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
                by_id = read_accounts(admin, [e.text for e in entries if e.kind == "account_id"])
                by_email = find_by_emails(admin, [e.text for e in entries if e.kind == "email"])
            users = resolve_entries(entries, by_id=by_id, by_email=by_email, earlier=problems)
        except OnDemandError as exc:
            raise AirflowFailException(str(exc)) from None
        who = str(run_record(context, record)["triggered_by"])
        requests = on_demand_requests(
            users, run_id=context["run_id"], requested_by=who, reason=str(params[RESTORE_REASON])
        )
        self.log.info(
            "fetch_requests: restore on demand by %s: %d accounts; JSM requests are not read in this run",
            who,
            len(requests),
        )
        return [request.to_dict() for request in requests]

    @staticmethod
    def build_jql(site: Any, policy: Policy) -> str:
        desk = policy.restore.service_desk
        request_type = policy.restore.request_type
        clauses = []
        desk_id = None
        if desk:
            project = str(desk)
            if project.isdigit():
                found = next((d for d in site.iter_service_desks() if str(d.get("id")) == project), None)
                if found is None:
                    raise AirflowFailException(
                        f"restore.service_desk {project} is not a service desk of this site; use the "
                        "desk's id or project key."
                    )
                desk_id, project = project, str(found["projectKey"])
            else:
                desk_id = project
            clauses.append(f"project = {_jql_quote(project)}")
        if request_type.isdigit() and desk_id:
            # JQL matches request types by name: look the configured id up.
            found_type = next(
                (t for t in site.iter_request_types(desk_id) if str(t.get("id")) == request_type), None
            )
            if found_type is not None:
                request_type = str(found_type["name"])
        clauses.append(f'"Request Type" = {_jql_quote(request_type)}')
        clauses.append("statusCategory != Done")
        return " AND ".join(clauses) + " ORDER BY created ASC"


class EvaluateRestoreRulesOperator(StopsAtlassianCallsOnKill, BaseOperator):
    """Decide per request (pure rules) from the reporter's live account and the state store."""

    template_fields: Sequence[str] = ("requests", "admin_conn_id")
    ui_color = "#eae6ff"

    def __init__(
        self, *, requests: Any, run_policy: Any, admin_conn_id: str = "atlassian_admin", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.requests = requests
        self.run_policy = wire_large_input(self, run_policy)
        self.admin_conn_id = admin_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        policy = policy_of_run(resolve_large_input(self.run_policy, context))
        requests = [RestoreRequest.from_dict(r) for r in self.requests or []]
        if not requests:
            self.log.info("evaluate_rules: no open restore requests")
            return []
        as_of = run_as_of(context)
        reporters = sorted({r.reporter_account_id for r in requests if r.reporter_account_id})
        with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
            accounts = read_accounts(admin, reporters)
        with open_state_store(policy, self.log) as store:
            history = store.history(reporters)
            journals = {account_id: store.journal(account_id=account_id) for account_id in reporters}
        decisions = []
        for request in requests:
            account_id = request.reporter_account_id or ""
            decision = decide(
                request,
                account=accounts.get(account_id),
                history=history.get(account_id),
                journal=journals.get(account_id, []),
                restore_policy=policy.restore,
                as_of=as_of,
                restored_grace_days=policy.restored_grace_days,
                approval=approval_state(journals.get(account_id, []), request.key, as_of=as_of),
            )
            row = decision.to_dict()
            row["reporter_name"] = request.reporter_name
            decisions.append(row)
        if any(r.requested_by for r in requests):
            # Asked by an admin: an account that cannot be restored fails the run before any write.
            problems = unrestorable(decisions, (NOT_ACTIONED, DELETED, REMOVED))
            if problems:
                raise AirflowFailException(str(OnDemandError(problems)))
        for row in decisions[:_MAX_LINES]:
            self.log.info("evaluate_rules: %s -> %s (%s)", row["request_key"], row["verdict"], row["rule"])
        counts = Counter(row["verdict"] for row in decisions)
        self.log.info(
            "evaluate_rules: %d requests: %s",
            len(decisions),
            counts_in_words(counts),
        )
        return decisions


class RestoreAccessOperator(StopsAtlassianCallsOnKill, BaseOperator):
    """Carry out the ``restore`` decisions, at most ``restore.max_restores_per_run`` per run.

    Each restore goes through the journalled write path
    (:class:`~atlassian_cleanup.restore.carry_out.RestoreWriter`): claimed before the first call,
    completed with the ``restored`` transition, so the daily DAG then gives the user
    ``restored_grace_days``. An interrupted earlier attempt is checked against the account before
    anything is written; every step is skipped when its effect is already there (or an admin was
    quicker), and a call whose answer was lost is re-read, never re-sent blindly.
    """

    template_fields: Sequence[str] = ("decisions", "admin_conn_id")
    ui_color = "#e3fcef"

    def __init__(
        self, *, decisions: Any, run_policy: Any, admin_conn_id: str = "atlassian_admin", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.decisions = decisions
        self.run_policy = wire_large_input(self, run_policy)
        self.admin_conn_id = admin_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        policy = policy_of_run(resolve_large_input(self.run_policy, context))
        rows = [dict(row) for row in self.decisions or []]
        cap = policy.restore.max_restores_per_run
        attempted = 0
        failed = 0
        if not policy.dry_run and any(r["verdict"] == RESTORE and not r.get("done_earlier") for r in rows):
            store_cm = open_state_store(policy, self.log)
            writer = RestoreWriter(journal_of_run(store_cm, context), self.log)
        else:
            store_cm = writer = None
        with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
            for row in rows:
                if row["verdict"] != RESTORE:
                    continue
                if row.get("done_earlier"):
                    row["restore_outcome"] = "done earlier"
                    continue
                if attempted >= cap:
                    # Over the cap: not claimed and not answered, so the next run takes it up.
                    row["verdict"] = DEFERRED
                    row["restore_outcome"] = f"deferred: max_restores_per_run ({cap}) reached in this run"
                    continue
                attempted += 1
                if policy.dry_run:
                    row["restore_outcome"] = (
                        f"dry run: would {', '.join(row['steps']) or 'record the restore'}"
                    )
                    self.log.info("restore_access (dry run): %s would %s", row["request_key"], row["steps"])
                    continue
                assert writer is not None
                outcome = writer.restore(admin, decision_from_dict(row))
                row.update(outcome)
                if outcome["restore_outcome"].startswith("failed"):
                    failed += 1
        if store_cm is not None:
            store_cm.close()
        counts = Counter(
            r.get("restore_outcome", "").split(":")[0] for r in rows if r["verdict"] in (RESTORE, DEFERRED)
        )
        self.log.info(
            "restore_access (%s): %d restores attempted (cap %d): %s",
            mode_of(policy),
            attempted,
            cap,
            counts_in_words(counts),
        )
        if failed:
            context["ti"].xcom_push(key="return_value", value=rows)
            raise AirflowException(
                f"restore_access: {failed} restores failed; see the lines above. They are journalled as "
                "failed and tried again by the next run; done ones are not repeated."
            )
        return rows


class SiteDecisionsOperator(BaseOperator):
    """Base of the tasks that take the run's decisions and its policy and may reach the JSM site."""

    template_fields: Sequence[str] = ("decisions", "site_conn_id")

    def __init__(
        self, *, decisions: Any, run_policy: Any, site_conn_id: str = "atlassian_site", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.decisions = decisions
        self.run_policy = wire_large_input(self, run_policy)
        self.site_conn_id = site_conn_id


class CommentAndResolveOperator(StopsAtlassianCallsOnKill, SiteDecisionsOperator):
    """Answer each decided request once (public comment), and resolve it when the decision says so.

    The comment and the resolve are claimed separately (actions ``answer:<verdict>`` and
    ``resolve``), so a failed transition is retried by the next run without a second comment. A
    request whose restore failed or was deferred by the cap is not answered (the next run is).
    """

    ui_color = "#fffae6"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.client.hooks import AtlassianSiteHook

        policy = policy_of_run(resolve_large_input(self.run_policy, context))
        rows = [dict(row) for row in self.decisions or []]
        todo = [r for r in rows if _answerable(r)]
        for row in rows:
            if is_on_demand(row["request_key"]):
                row["answer_outcome"] = "restore on demand: no JSM request to answer"
            elif row["verdict"] == AWAITING_APPROVAL:
                row["answer_outcome"] = "waiting for an admin's approval in Airflow: not answered again"
            elif not _answerable(row):
                row["answer_outcome"] = "not answered in this run"
        if policy.dry_run:
            for row in todo:
                row["answer_outcome"] = "dry run: would comment" + (" and resolve" if row["resolve"] else "")
                self.log.info("comment_and_resolve (dry run): %s would be answered", row["request_key"])
            return rows
        failed = 0
        if todo:
            with (
                open_state_store(policy, self.log) as store,
                AtlassianSiteHook(atlassian_site_conn_id=self.site_conn_id) as site,
            ):
                writer = RestoreWriter(journal_of_run(store, context), self.log)
                for row in todo:
                    row["answer_outcome"] = writer.answer(site, row)
                    if "failed" in row["answer_outcome"]:
                        failed += 1
        counts = Counter(r["answer_outcome"].split(":")[0] for r in rows)
        self.log.info(
            "comment_and_resolve: %d requests: %s",
            len(rows),
            counts_in_words(counts),
        )
        if failed:
            context["ti"].xcom_push(key="return_value", value=rows)
            raise AirflowException(
                f"comment_and_resolve: {failed} requests could not be answered; see above."
            )
        return rows


def _answerable(row: Mapping[str, Any]) -> bool:
    if is_on_demand(row["request_key"]):
        return False
    if row["verdict"] in (DEFERRED, AWAITING_APPROVAL):
        return False
    if row["verdict"] == RESTORE:
        outcome = str(row.get("restore_outcome") or "")
        return outcome.startswith(("restored", "done earlier", "dry run"))
    return True


class ExportRestoreAuditOperator(BaseOperator):
    """Write the restore run's audit CSV (one row per request) and fail last if a task failed.

    Reuses :func:`atlassian_cleanup.reports.audit.write_audit` into ``<audit dir>/restore/``: the decision
    is in ``rule`` / ``reason`` / ``proposed_action`` (the verdict) / ``planned_action`` (the
    restore steps) / ``outcome``, and ``stage`` is the store's stage when the rules ran.
    """

    template_fields: Sequence[str] = ("stages", "audit_dir")
    ui_color = "#e3fcef"

    def __init__(self, *, stages: Any, run_policy: Any, audit_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stages = stages
        self.run_policy = wire_large_input(self, run_policy)
        self.audit_dir = audit_dir

    def execute(self, context: Context) -> dict[str, Any]:
        from atlassian_cleanup.reports.audit import write_audit
        from atlassian_cleanup.settings import restore_audit_dir

        merged: dict[str, dict[str, Any]] = {}
        for stage in as_list(self.stages):
            for row in stage or []:
                merged.setdefault(row["request_key"], {}).update(row)
        failed_upstream = failed_upstream_tasks(self, context)
        if not merged and failed_upstream:
            raise AirflowFailException(
                f"export_audit: no decisions because {', '.join(failed_upstream)} failed."
            )
        if not merged:
            raise AirflowSkipException("export_audit: no open restore requests; nothing to export")
        record = resolve_optional_input(self.run_policy, context)
        policy = policy_of_run(record)
        rows = [audit_row(row) for row in merged.values()]
        verdicts = Counter(row["proposed_action"] for row in rows)
        manifest = write_audit(
            rows,
            Path(restore_audit_dir(self.audit_dir)),
            run_id=context["run_id"],
            as_of=run_as_of(context).date().isoformat(),
            mode=mode_of(policy),
            summary={
                "requests": len(rows),
                "verdicts": dict(sorted(verdicts.items())),
                "failed_tasks": failed_upstream,
            },
            policy=policy.to_dict(),
            run=run_record(context, record),
        )
        self.log.info(
            "export_audit: wrote %d rows to %s (sha256 %s)", manifest.rows, manifest.csv_path, manifest.sha256
        )
        announce_audit(self, context, manifest)
        if failed_upstream:
            raise AirflowFailException(
                f"export_audit: audit written to {manifest.csv_path}, "
                f"but {', '.join(failed_upstream)} failed."
            )
        return manifest.to_dict()


def audit_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One audit CSV row per request (a subset of :data:`~atlassian_cleanup.reports.audit.AUDIT_COLUMNS`)."""
    outcome = [f"{row['request_key']}"]
    for key in ("restore_outcome", "answer_outcome", "approval_outcome"):
        if row.get(key):
            outcome.append(str(row[key]))
    return {
        "account_id": row.get("account_id") or "",
        "email": row.get("email") or "",
        "name": row.get("reporter_name") or "",
        "stage": row.get("stage") or "",
        "rule": row.get("rule"),
        "reason": row.get("reason"),
        "proposed_action": row.get("verdict"),
        # A refused request's steps are what a restore would do (for the admin asked), not a plan.
        "planned_action": ";".join(row.get("steps") or []) if row.get("verdict") == RESTORE else "",
        "outcome": " | ".join(outcome),
    }
