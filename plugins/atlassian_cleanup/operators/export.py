"""The cleanup DAG's last task: the audit CSV and manifest, the Asset event and the admin digest."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from atlassian_cleanup.decisions.records import format_timestamp
from atlassian_cleanup.operators.base import (
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
    wire_large_input,
)
from atlassian_cleanup.outcomes import StageOutcome, outcomes_from_xcom

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.decisions.policy import Policy

#: The plan columns :func:`~atlassian_cleanup.decisions.planner.summarise_plan` counts.
SUMMARY_COLUMNS = ("proposed_action", "protected_by", "rule", "policy_rule")
#: The plan columns the seat figures read (:func:`~atlassian_cleanup.reports.seats.seat_figures`).
SEAT_COLUMNS = (
    "account_id",
    "account_type",
    "status",
    "product_last_active",
    "proposed_action",
    "products_to_remove",
)
#: The plan columns the admin digest reads (its counts and the users it lists).
DIGEST_COLUMNS = (
    "account_id",
    "name",
    "email",
    "proposed_action",
    "protected_by",
    "planned_action",
    "action_date",
    "warning_lead_days",
)


class ExportAuditOperator(BaseOperator):
    """Write the audit CSV and manifest, and record them on the audit Asset.

    :param plan: the plan reference from ``compute_inactivity`` (or plan records).
    :param outcomes: the per-user outcome maps returned by the three action stages.
    :param run_policy: the run's policy (the ``policy`` XCom of the run's first task).
    :param approval: what ``approve_plan`` decided (:func:`approval_record`), if it ran.
    :param audit_dir: directory the CSVs go to (shared with the api-server that serves them).
    """

    # The XCom inputs are deliberately not template fields: see :func:`wire_large_input`.
    template_fields: Sequence[str] = ("audit_dir", "policy_path")
    ui_color = "#e3fcef"

    def __init__(
        self,
        *,
        plan: Any,
        outcomes: Any,
        run_policy: Any,
        audit_dir: str,
        policy_path: str,
        approval: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = wire_large_input(self, plan)
        self.outcomes = [wire_large_input(self, stage) for stage in as_list(outcomes)]
        self.run_policy = wire_large_input(self, run_policy)
        # Read, but deliberately not made a direct upstream: on Reject an ApprovalOperator skips
        # its direct downstream tasks whatever their trigger rule, and the audit must still run.
        self.approval = approval
        self.audit_dir = audit_dir
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        failed_upstream = failed_upstream_tasks(self, context)
        plan = resolve_large_input(self.plan, context)
        stage_results = [resolve_large_input(stage, context) for stage in self.outcomes]
        if plan is None:
            # Runs with trigger rule all_done. Without a plan there is nothing to audit; the run
            # must still end failed (a skipped leaf would make it look green).
            if failed_upstream:
                raise AirflowFailException(
                    f"export_audit: no plan was produced because {', '.join(failed_upstream)} "
                    "failed; nothing was written to Atlassian. See those task logs."
                )
            raise AirflowSkipException("export_audit: no plan was produced; nothing to export")
        # A plan exists, so the first task published the run's policy: audit under that one.
        record = resolve_optional_input(self.run_policy, context)
        policy = policy_of_run(record)
        run = run_record(context, record, resolve_optional_input(self.approval, context))
        outcome_by_account: dict[str, StageOutcome] = {}
        for stage_outcomes in stage_results:
            outcome_by_account.update(outcomes_from_xcom(stage_outcomes))
        with contextlib.ExitStack() as stack:
            # A live run reads this run's journal for the CSV and records the run's end: one
            # store session for both. A dry run writes no journal and records nothing.
            store = None if policy.dry_run else stack.enter_context(open_state_store(policy, self.log))
            manifest, summary = self._write_audit(
                context, policy, plan, outcome_by_account, failed_upstream, store, run
            )
        seats = summary["seats"]
        self.log.info(
            "export_audit: billable seats %d before, %d after (%d reclaimed%s)%s",
            seats["total_before"],
            seats["total_after"],
            seats["total_reclaimed"],
            ", projected: dry run" if seats["projected"] else "",
            (
                f"; estimated saving {seats['estimated_saving_per_month']:.2f} {seats['currency']}/month"
                if seats["priced"]
                else "; set licensing.seat_price in the policy to estimate the saving"
            ),
        )
        self.log.info(
            "export_audit: wrote %d rows to %s (sha256 %s, %s)",
            manifest.rows,
            manifest.csv_path,
            manifest.sha256,
            manifest.mode,
        )
        digest = self._send_digest(
            policy,
            context,
            plan,
            outcome_by_account,
            failed_upstream,
            manifest.csv_path,
            summary["seats"],
            run,
        )
        if failed_upstream:
            # The audit is written for every run, but a run whose gate or writes failed must not
            # look green: this task is the DAG's leaf, so it carries the failure to the run.
            raise AirflowFailException(
                f"export_audit: audit written to {manifest.csv_path}, but the run failed in "
                f"{', '.join(failed_upstream)}; see those task logs."
            )
        self._apply_retention(context)
        return {**manifest.to_dict(), "digest": digest}

    def _apply_retention(self, context: Context) -> None:
        """Remove the hand-off files of this DAG's earlier runs (see README, "How data travels")."""
        from atlassian_cleanup.operators.handoff import remove_earlier_runs

        try:
            removed = remove_earlier_runs(context["ti"].dag_id, context["run_id"])
        except OSError as exc:  # the audit is written: a cleanup problem must not fail the run
            self.log.warning("export_audit: earlier runs' hand-off files not removed: %s", exc)
            return
        self.log.info("export_audit: hand-off files of %d earlier run(s) removed", removed)

    def _write_audit(
        self,
        context: Context,
        policy: Policy,
        plan: Any,
        outcomes: Mapping[str, StageOutcome],
        failed_upstream: Sequence[str],
        store: Any,
        run: Mapping[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        """Write the CSV and manifest, set the Asset event, and (live) record the run's end.

        The plan is streamed from its file in row batches, three times with the columns each pass
        needs (the summary, the results and seats, the CSV rows): no list of the whole audit is
        built in memory.
        """
        from atlassian_cleanup.decisions.planner import summarise_plan
        from atlassian_cleanup.operators.handoff import iter_plan, plan_frame
        from atlassian_cleanup.reports.audit import audit_rows, result_of, write_audit
        from atlassian_cleanup.reports.seats import seat_figures

        summary = summarise_plan(plan_frame(plan, SUMMARY_COLUMNS))
        if failed_upstream:
            summary["failed_tasks"] = list(failed_upstream)
        results: Counter[str] = Counter()
        freeing: dict[str, str] = {}

        def with_results() -> Any:
            # seat_figures looks up each row's result right after the row is yielded: the result
            # is recorded first (only rows whose action went through can free a seat).
            freeing.clear()
            for row in iter_plan(plan, SEAT_COLUMNS):
                result = result_of(row.get("proposed_action"), outcomes.get(row["account_id"]))
                results[result] += 1
                freeing[row["account_id"]] = result
                yield row

        summary["seats"] = seat_figures(with_results(), freeing, policy.licensing, dry_run=policy.dry_run)
        summary["results"] = dict(sorted(results.items()))
        journal = self._journal_by_account(store, context["run_id"]) if store is not None else {}
        logical_date = context.get("logical_date")
        manifest = write_audit(
            audit_rows(iter_plan(plan), outcomes, journal),
            Path(self.audit_dir),
            run_id=context["run_id"],
            as_of=run_as_of(context).date().isoformat(),
            mode=mode_of(policy),
            logical_date=format_timestamp(logical_date) if logical_date else None,
            summary=summary,
            policy=policy.to_dict(),
            state_store_id=store.store_id() if store is not None else None,
            run=run,
        )
        announce_audit(self, context, manifest)
        if store is not None:
            summary["writes"] = store.write_counts(context["run_id"])
            store.finish_run(context["run_id"], at=run_as_of(context), summary=summary)
        return manifest, summary

    @staticmethod
    def _journal_by_account(store: Any, run_id: str) -> dict[str, dict[str, Any]]:
        """This run's latest journal entry per account: API status and timestamps for the CSV."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in store.journal(run_id=run_id):
            latest[entry.account_id] = {
                "api_status": entry.api_status,
                "intent_at": format_timestamp(entry.intent_at),
                "result_at": format_timestamp(entry.result_at),
            }
        return latest

    def _send_digest(
        self,
        policy: Policy,
        context: Context,
        plan: Any,
        outcomes: Mapping[str, StageOutcome],
        failed_tasks: Sequence[str],
        csv_path: str,
        seats: Mapping[str, Any],
        run: Mapping[str, Any],
    ) -> str:
        """E-mail the run's figures to ``notifications.admin_emails`` (dry runs too, saying so).

        After the audit is written: the digest points at it. A digest that cannot be sent is
        logged as an error but does not fail the task; the audit, the journal and the run state
        stay the record, and failing here would hide the run's own outcome.
        """
        from atlassian_cleanup.actions.notifications import (
            SmtpUnavailableError,
            TemplateError,
            digest_context,
            resolve_templates_dir,
            send_digest,
        )
        from atlassian_cleanup.decisions.gates import plausibility_warnings

        settings = policy.notifications
        if not settings.admin_emails:
            self.log.info("export_audit: no notifications.admin_emails in the policy; no digest sent")
            return "not configured"
        from atlassian_cleanup.operators.handoff import iter_plan

        rows = list(iter_plan(plan, DIGEST_COLUMNS))
        digest = digest_context(
            plan=rows,
            outcomes=outcomes,
            run_id=context["run_id"],
            as_of=run_as_of(context).date().isoformat(),
            mode=mode_of(policy),
            audit_file=Path(csv_path).name,
            audit_page_url=settings.audit_page_url,
            failed_tasks=failed_tasks,
            seats=seats,
            without_email=policy.warning.without_email,
            policy_warnings=plausibility_warnings(policy, user_count=len(rows)),
            run=run,
        )
        try:
            subject = send_digest(
                digest,
                to=settings.admin_emails,
                smtp_conn_id=settings.smtp_conn_id,
                from_email=settings.from_email,
                templates_dir=resolve_templates_dir(settings.templates_dir, self.policy_path),
            )
        except (TemplateError, SmtpUnavailableError, OSError) as exc:
            self.log.error("export_audit: the admin digest was not sent: %s", exc)
            return f"not sent: {exc}"
        self.log.info(
            "export_audit: admin digest sent to %d address(es): %s", len(settings.admin_emails), subject
        )
        return f"sent: {subject}"
