"""The writing stages: warn and notify, apply the policy's action, delete dormant accounts.

Each stage takes its rows of the plan; a dry run logs what it would do, a live run hands the rows
to the journalled enforcement engine. Both return one outcome per user for the audit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from atlassian_cleanup.action_kinds import (
    DELETE,
    DELETE_NOTICE,
    EMAIL_ACTIONS,
    LIFECYCLE_ACTIONS,
    REMOVE_PRODUCT_ACCESS,
)
from atlassian_cleanup.client.retry import StopsAtlassianCallsOnKill
from atlassian_cleanup.decisions.records import valid_email_address
from atlassian_cleanup.operators.base import (
    open_state_store,
    policy_of_run,
    resolve_large_input,
    run_as_of,
    wire_large_input,
)
from atlassian_cleanup.outcomes import FAILED, MODE_LIVE, StageOutcome, outcomes_to_xcom
from atlassian_cleanup.progress import counts_in_words

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.decisions.policy import Policy


class _StageOperator(StopsAtlassianCallsOnKill, BaseOperator):
    """One enforcement stage: the rows of the plan with this stage's actions.

    In a dry run it logs exactly what it would do per user. Live, it hands the rows to the
    enforcement engine, which journals intent before each write and the result after it, so a
    retried or re-run task skips what is done. Returns ``{account_id: outcome}`` (the XCom form of
    :class:`~atlassian_cleanup.outcomes.StageOutcome`) for the audit CSV; per-user failures fail
    the task after every other user was processed.

    :param plan: the plan reference from ``compute_inactivity`` (or plan records).
    :param run_policy: the run's policy (the ``policy`` XCom of the run's first task): a stage acts
        under the policy the plan was made with, never under a policy file edited since.
    :param policy_path: the policy file, only to find templates named relative to it.
    :param max_user_lines: per-user lines to log (the full list is in the audit CSV; a 100k-user
        org must not turn a task log into a user dump).
    """

    # ``plan`` and ``run_policy`` are deliberately not template fields: see :func:`wire_large_input`.
    template_fields: Sequence[str] = ("policy_path", "admin_conn_id")
    stage_actions: ClassVar[frozenset[str]] = frozenset()
    stage_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        plan: Any,
        run_policy: Any,
        policy_path: str,
        admin_conn_id: str = "atlassian_admin",
        max_user_lines: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = wire_large_input(self, plan)
        self.run_policy = wire_large_input(self, run_policy)
        self.policy_path = policy_path
        self.admin_conn_id = admin_conn_id
        self.max_user_lines = max_user_lines

    def describe(self, row: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        raise NotImplementedError

    def policy(self, context: Context) -> Policy:
        """The run's policy (see :func:`start_run_policy`)."""
        return policy_of_run(resolve_large_input(self.run_policy, context))

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        policy = self.policy(context)
        from atlassian_cleanup.operators.handoff import plan_rows

        # Only this stage's rows are read from the plan file (a row filter on proposed_action).
        selected = plan_rows(resolve_large_input(self.plan, context), self.stage_actions)
        if policy.dry_run:
            return outcomes_to_xcom(self._dry_run(selected))
        if not selected:
            self.log.info("%s (live): nothing planned", self.stage_name)
            return {}
        from atlassian_cleanup.actions.enforcement import Enforcer
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        with open_state_store(policy, self.log) as store:
            if not store.knows_run(context["run_id"], mode=MODE_LIVE):
                # compute_inactivity recorded this run in the store it planned against; a store
                # without it is another one (a worker's own embedded file, a lost database).
                raise AirflowFailException(
                    f"{self.stage_name}: the state store has no record of this run, so it is not "
                    "the one compute_inactivity planned against (an embedded SQLite file on an "
                    "ephemeral or different worker, or a lost database); nothing was sent or "
                    "changed. Point state_store.conn_id at a database every worker shares."
                )
            enforcer = Enforcer(
                hook_factory=lambda: AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id),
                store=store,
                run_id=context["run_id"],
                at=run_as_of(context),
                log=self.log,
                concurrency=policy.safety.write_concurrency,
            )
            outcomes = self.enforce(selected, enforcer, policy, context)
            left_open = store.uncertain_entries(run_id=context["run_id"])
        if left_open:
            # Claimed but no result recorded (the store failed after the call): never replayed
            # blindly, the next run reads Atlassian first; the admin should know they exist.
            self.log.warning(
                "%s: %d writes of this run have no recorded result; the next run checks each in "
                "Atlassian before writing again",
                self.stage_name,
                len(left_open),
            )
        return outcomes_to_xcom(self._report(outcomes, context))

    def _report(self, outcomes: Sequence[Any], context: Context) -> dict[str, StageOutcome]:
        results = Counter(outcome.result for outcome in outcomes)
        failed = [outcome for outcome in outcomes if outcome.result == FAILED]
        for outcome in failed[: self.max_user_lines]:
            self.log.error("%s: %s failed: %s", self.stage_name, outcome.account_id, outcome.detail)
        by_account = {o.account_id: StageOutcome(o.result, o.detail) for o in outcomes}
        self.log.info(
            "%s (live): %d users: %s",
            self.stage_name,
            len(outcomes),
            counts_in_words(results),
        )
        if failed:
            # Keep what was done for the audit, then fail so the admin sees it and the retry
            # picks up exactly the failed users (done ones are skipped by the journal).
            context["ti"].xcom_push(key="return_value", value=outcomes_to_xcom(by_account))
            raise AirflowException(
                f"{self.stage_name}: {len(failed)} of {len(outcomes)} users failed; see the lines "
                "above. Done users are journalled and will not be written again on retry."
            )
        return by_account

    def _dry_run(self, selected: list[Mapping[str, Any]]) -> dict[str, StageOutcome]:
        outcomes: dict[str, StageOutcome] = {}
        for index, row in enumerate(selected):
            line = self.describe(row)
            outcomes[row["account_id"]] = StageOutcome.planned(line)
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
            counts_in_words(kinds),
        )
        return outcomes


def _who(row: Mapping[str, Any]) -> str:
    return f"{row['account_id']} ({row.get('name') or 'no name'})"


class NotifyWarningsOperator(_StageOperator):
    """E-mail users who are about to lose access, once per warning bucket.

    The templates (shipped, or the policy's ``notifications.templates_dir``) are validated first,
    in a dry run too, so a broken template is found before the first live run, never halfway
    through a batch. A user without a visible e-mail address is *reported* (audit outcome and admin
    digest), never guessed.

    :param smtp_conn_id: the customer's own SMTP relay; default: the policy's
        ``notifications.smtp_conn_id``.
    """

    template_fields: Sequence[str] = (*_StageOperator.template_fields, "smtp_conn_id")
    stage_actions = frozenset(EMAIL_ACTIONS)
    stage_name = "notify_warnings"
    ui_color = "#fffae6"

    def __init__(self, *, smtp_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smtp_conn_id = smtp_conn_id

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        _check_warning_templates(self.policy(context), self.policy_path)
        return super().execute(context)

    def describe(self, row: Mapping[str, Any]) -> str:
        problem = _address_problem(row)
        if problem:
            return (
                f"report {_who(row)}: {problem}, so no warning can be sent "
                f"(access ends on {row.get('action_date')})"
            )
        if row.get("proposed_action") == DELETE_NOTICE:
            return (
                f"email {_who(row)}: deletion notice, deletion on {row.get('action_date')} — "
                f"{row.get('reason')}"
            )
        return (
            f"email {_who(row)}: access ends on {row.get('action_date')} "
            f"({row.get('warning_lead_days')}-day warning) — {row.get('reason')}"
        )

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        from atlassian_cleanup.actions.notifications import WarningSender, resolve_templates_dir

        settings = policy.notifications
        with WarningSender(
            smtp_conn_id=self.smtp_conn_id or settings.smtp_conn_id,
            from_email=settings.from_email,
            restore_url=settings.request_access_url,
            templates_dir=resolve_templates_dir(settings.templates_dir, self.policy_path),
        ) as sender:
            return enforcer.warn(
                rows, sender, list_unaddressable=policy.warning.without_email == "action_after_notice"
            )


def _check_warning_templates(policy: Policy, policy_path: str) -> None:
    """Validate the policy's warning and notice templates; a broken set fails the task without retries."""
    from atlassian_cleanup.actions.notifications import (
        TemplateError,
        check_warning_templates,
        resolve_templates_dir,
    )

    try:
        check_warning_templates(resolve_templates_dir(policy.notifications.templates_dir, policy_path))
    except TemplateError as exc:
        # A retry cannot fix a template: fail at once with the file and the placeholder.
        raise AirflowFailException(str(exc)) from exc


def _address_problem(row: Mapping[str, Any]) -> str | None:
    """Why a live run would not e-mail this user, as far as it can be known without the relay.

    The same checks as the live sender, so a dry run never promises an e-mail the live run would
    report instead. Whether the relay offers SMTPUTF8 (for a non-ASCII local part) is known only
    when connected.
    """
    from atlassian_cleanup.actions.mail import UndeliverableAddressError, smtp_address

    address = valid_email_address(row.get("email"))
    if address is None:
        return "no visible e-mail address"
    try:
        smtp_address(address)
    except UndeliverableAddressError:
        return "its e-mail domain cannot be encoded for sending (IDNA)"
    return None


class ApplyActionsOperator(_StageOperator):
    """Suspend, deactivate or remove product access for the planned users."""

    stage_actions = frozenset(LIFECYCLE_ACTIONS)
    stage_name = "apply_actions"
    ui_color = "#ffebe6"

    def describe(self, row: Mapping[str, Any]) -> str:
        action = row["proposed_action"]
        if action == REMOVE_PRODUCT_ACCESS:
            products = ", ".join(row.get("products_to_remove") or [])
            return f"remove {products} access from {_who(row)} — {row.get('reason')}"
        return f"{action} {_who(row)} — {row.get('reason')}"

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        return enforcer.apply(rows)


class DeleteDormantOperator(_StageOperator):
    """Delete accounts this tool actioned long enough ago (Atlassian's 14-day grace applies)."""

    stage_actions = frozenset({DELETE})
    stage_name = "delete_dormant"
    ui_color = "#ff8f73"

    def describe(self, row: Mapping[str, Any]) -> str:
        how = (
            "lifecycle delete, cancellable for 14 days"
            if row.get("claim_status") == "managed"
            else "unmanaged: removed from the directory, no grace"
        )
        return f"delete {_who(row)} ({how}) — {row.get('reason')}"

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        return enforcer.delete(rows)
