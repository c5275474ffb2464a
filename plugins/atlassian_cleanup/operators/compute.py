"""The plan: who is inactive and what happens to them, behind the input and memory gates."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from atlassian_cleanup.action_kinds import DEACTIVATE, LIFECYCLE_ACTIONS, WARN
from atlassian_cleanup.operators.base import (
    mode_of,
    open_state_store,
    policy_of_run,
    resolve_large_input,
    run_as_of,
    wire_large_input,
)
from atlassian_cleanup.operators.extract import EXTRACTION_KEY
from atlassian_cleanup.outcomes import MODE_LIVE
from atlassian_cleanup.progress import counts_in_words
from atlassian_cleanup.settings import audit_dir as default_audit_dir

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.decisions.policy import Policy


class ComputeInactivityOperator(BaseOperator):
    """Plan who is inactive and what happens to them, as of the run's logical date.

    The decision itself is :func:`atlassian_cleanup.decisions.planner.plan_actions`, a pure function; this
    operator only feeds it and logs the outcome. The API user (the site connection's login) is
    passed as protected so the tool can never lock itself out.
    """

    # ``users`` and ``run_policy`` are deliberately not template fields: see :func:`wire_large_input`.
    template_fields: Sequence[str] = ("site_conn_id", "audit_dir", "admin_conn_id")
    ui_color = "#eae6ff"

    def __init__(
        self,
        *,
        users: Any,
        run_policy: Any,
        site_conn_id: str | None = "atlassian_site",
        audit_dir: str | None = None,
        admin_conn_id: str = "atlassian_admin",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.users = wire_large_input(self, users)
        self.run_policy = wire_large_input(self, run_policy)
        self.site_conn_id = site_conn_id
        #: Where ``export_audit`` writes manifests: they witness which state store live runs used.
        self.audit_dir = audit_dir
        self.admin_conn_id = admin_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from atlassian_cleanup.decisions.gates import (
            check_caps,
            missing_activity_share,
            plausibility_warnings,
            sanity_problems,
        )
        from atlassian_cleanup.decisions.planner import plan_actions, plan_to_records, summarise_plan

        record = resolve_large_input(self.run_policy, context)
        policy = policy_of_run(record)
        as_of = run_as_of(context)
        mode = mode_of(policy)
        run_id = context["run_id"]
        from atlassian_cleanup.operators.handoff import plan_to_arrow, read_users, write_table

        api_user_emails = []
        if self.site_conn_id:
            login = BaseHook.get_connection(self.site_conn_id).login
            if login:
                api_user_emails.append(login)
        # The reference extract_users returns (an older run's JSON table or records are accepted too).
        raw_users = resolve_large_input(self.users, context)
        users = read_users(raw_users)
        extraction = raw_users.get(EXTRACTION_KEY) if isinstance(raw_users, Mapping) else None
        # Without extraction counts (records handed in directly) every user is the directory's.
        directory_count = int(extraction["directory_users"]) if extraction else len(users)
        with open_state_store(policy, self.log) as store:
            self._check_memory(store, policy, context)
            history = store.history(users.account_ids)
            reviews = _reviews_in_force(store, as_of)
            previous = store.previous_run(run_id, as_of=as_of)
            missing_share = missing_activity_share(_activity_rows(users))
            if previous is not None and previous.directory_user_count is not None:
                current, before = directory_count, previous.directory_user_count
            else:  # the previous run predates the directory's own count: compare like with like
                current, before = len(users), (previous.user_count if previous else None)
            problems = sanity_problems(
                user_count=current,
                previous_user_count=before,
                missing_activity_share=missing_share,
                policy=policy,
                back_filled=len(users) - directory_count,
            )
            if problems:
                # Safety rule 4: a run whose input looks wrong stops before any write.
                raise AirflowFailException(
                    "compute_inactivity: the extracted data looks wrong, so nothing will be "
                    "warned or changed in this run:\n- " + "\n- ".join(problems)
                )
            started = time.monotonic()
            plan = plan_actions(
                users, policy, as_of, history=history, api_user_emails=api_user_emails, reviews=reviews
            )
            refusals = self._deactivation_refusals(plan) if DEACTIVATE in policy.actions_in_use() else {}
            if refusals:
                # Planned again with Atlassian's answer, so every reason and warning says "suspend".
                plan = plan_actions(
                    users,
                    policy,
                    as_of,
                    history=history,
                    api_user_emails=api_user_emails,
                    not_deactivatable=refusals,
                    reviews=reviews,
                )
            summary = summarise_plan(plan)
            # The plan stays a frame here: no list of a million records is built for the caps.
            caps = check_caps(plan, user_count=len(users), policy=policy)
            store.start_run(
                run_id,
                as_of=as_of,
                mode=mode,
                user_count=len(users),
                directory_user_count=directory_count,
                missing_activity_share=missing_share,
                summary=summary,
            )
            if not policy.dry_run:
                # From here this store holds the run: say so outside it, for the next run's check.
                record_store_witness(self.dag_id, store.store_id(), run_id)
                returned = plan_to_records(plan[plan["rule"] == "activity_seen"])
                self._record_observations(store, returned, history, run_id, as_of)
                queued = _queue_reviews(store, plan, run_id, as_of)
                if queued or reviews:
                    self.log.info("compute_inactivity: review queue: %s", counts_in_words(queued))
        gate = {
            "mode": mode,
            "exceeded": caps.exceeded,
            "on_cap_exceeded": policy.safety.on_cap_exceeded,
            "lines": caps.lines,
            "caps": caps.to_dict(),
            "policy_sha256": record["sha256"],
        }
        context["ti"].xcom_push(key="gate", value=gate)
        self.log.info(
            "compute_inactivity: as of %s (%s) planned %d users in %.2fs: %s",
            as_of.date().isoformat(),
            mode,
            len(plan),
            time.monotonic() - started,
            _format_summary(summary),
        )
        self.log.info(
            "compute_inactivity: safety caps %s%s",
            "EXCEEDED" if caps.exceeded else "respected",
            "".join(f"; {line}" for line in caps.lines),
        )
        warnings = plausibility_warnings(policy, user_count=len(users))
        if warnings:
            self.log.warning(
                "compute_inactivity: %d policy plausibility warning(s), accepted (also in the digest):\n- %s",
                len(warnings),
                "\n- ".join(warnings),
            )
        reference = write_table(plan_to_arrow(plan), context, "plan")
        self.log.info(
            "compute_inactivity: plan written to %s (%d rows, %d bytes, sha256 %s)",
            reference["path"],
            reference["rows"],
            reference["bytes"],
            reference["sha256"],
        )
        return reference

    def _check_memory(self, store: Any, policy: Policy, context: Context) -> None:
        """Stop a live run whose state store lost the memory of earlier live runs (safety rule 10).

        A dry run is never stopped (it writes nothing) but says so in its log. The param
        ``acknowledge_new_state_store`` lets one live run start again from this store.
        """
        from atlassian_cleanup.decisions.gates import memory_problems
        from atlassian_cleanup.decisions.policy import ACKNOWLEDGE_NEW_STATE_STORE

        witness = latest_store_witness(self.dag_id, self.audit_dir or default_audit_dir(), self.log)
        problems = memory_problems(
            store_id=store.store_id(),
            store_knows_run=lambda run_id: store.knows_run(run_id, mode=MODE_LIVE),
            witness=witness,
        )
        if not problems:
            return
        text = "\n- ".join(problems)
        if policy.dry_run:
            self.log.warning(
                "compute_inactivity (dry run): the state store looks lost; a live run would stop here:\n- %s",
                text,
            )
            return
        if context["params"].get(ACKNOWLEDGE_NEW_STATE_STORE) is True:
            self.log.warning(
                "compute_inactivity: %s = true for this run: continuing with this state store "
                "(id %s) as a fresh start; earlier warnings and actions are not known to it:\n- %s",
                ACKNOWLEDGE_NEW_STATE_STORE,
                store.store_id(),
                text,
            )
            return
        raise AirflowFailException(
            "compute_inactivity: the state store lost the memory of earlier live runs, so nothing "
            "will be warned or changed in this run:\n- " + text
        )

    def _deactivation_refusals(self, plan: Any) -> dict[str, str | None]:
        """Ask Atlassian, for each account warned or deactivated this run, whether it may be deactivated."""
        from atlassian_cleanup.actions.live_account import deactivation_refusals
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        asked = plan.loc[
            (plan["planned_action"] == DEACTIVATE) & plan["proposed_action"].isin([WARN, DEACTIVATE]),
            "account_id",
        ].tolist()
        if not asked:
            return {}
        with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
            refused = deactivation_refusals(admin, asked)
        self.log.info(
            "compute_inactivity: deactivation checked with GET /users/{id}/manage for %d accounts; %d may "
            "not be deactivated and are planned for suspension instead (%s)",
            len(asked),
            len(refused),
            ", ".join(
                f"{k}: {v}" for k, v in sorted(Counter(r or "no reason" for r in refused.values()).items())
            )
            or "none",
        )
        return refused

    def _record_observations(
        self,
        store: Any,
        records: Sequence[Mapping[str, Any]],
        history: Mapping[str, Any],
        run_id: str,
        as_of: datetime,
    ) -> None:
        """Move users the planner saw come back to ``active`` (a new inactivity cycle)."""
        returned = [row for row in records if row.get("rule") == "activity_seen"]
        for row in returned:
            store.record_event(
                row["account_id"],
                "activity_seen",
                at=as_of,
                run_id=run_id,
                reason=row.get("reason") or "",
                evidence={"product_last_active": row.get("product_last_active")},
            )
        if returned:
            self.log.info("compute_inactivity: %d users active again; their cycle restarts", len(returned))


def _activity_rows(table: Any) -> Iterable[dict[str, Any]]:
    """Per user, what :func:`~.decisions.gates.missing_activity_share` reads, from a user table.

    ``last_active`` is true when the user has any last-active data (their own or a product's);
    the gate only asks whether there is some.
    """
    for account_type, status, seen in zip(
        table.decoded("account_type"), table.decoded("status"), table.has_activity().tolist(), strict=True
    ):
        yield {"account_type": account_type, "status": status, "last_active": seen or None}


def store_witness_key(dag_id: str) -> str:
    """The Airflow Variable recording which state store the DAG's latest live run used."""
    return f"atlassian_cleanup_state_store__{dag_id}"


def record_store_witness(dag_id: str, store_id: str, run_id: str) -> None:
    """Record, in Airflow's metadata (which survives the state store), the store a live run uses."""
    from airflow.sdk import Variable

    Variable.set(
        store_witness_key(dag_id),
        {"store_id": store_id, "run_id": run_id},
        description="Which Atlassian cleanup state store the latest live run used (do not edit).",
        serialize_json=True,
    )


def latest_store_witness(dag_id: str, audit_dir: str, log: Any) -> Any:
    """The latest live run recorded outside the state store, with the store it used, or None.

    Airflow's Variable first (each live run overwrites it); when it is gone (a new metadata
    database), the newest live audit manifest that names a store.
    """
    from airflow.sdk import Variable

    from atlassian_cleanup.decisions.gates import StoreWitness
    from atlassian_cleanup.reports.audit import read_manifests

    key = store_witness_key(dag_id)
    try:
        recorded = Variable.get(key, default=None, deserialize_json=True)
    except (ValueError, TypeError) as exc:
        log.warning("compute_inactivity: Airflow Variable %s is not readable (%s); ignored", key, exc)
        recorded = None
    if isinstance(recorded, Mapping) and recorded.get("store_id") and recorded.get("run_id"):
        return StoreWitness(
            run_id=str(recorded["run_id"]),
            store_id=str(recorded["store_id"]),
            source=f"Airflow Variable {key}",
        )
    for manifest in read_manifests(audit_dir):  # newest first; damaged ones carry no store id
        store_id = manifest.get("state_store_id")
        if manifest.get("mode") == MODE_LIVE and isinstance(store_id, str) and store_id:
            return StoreWitness(
                run_id=str(manifest.get("run_id")),
                store_id=store_id,
                source=f"audit manifest {manifest.get('manifest_file')}",
            )
    return None


#: How the plan summary's keys read in the compute_inactivity log line.
_SUMMARY_LABELS = {
    "total": "users",
    "by_action": "actions",
    "by_rule": "rules",
    "by_policy_rule": "policy rules",
    "writes": "Atlassian writes planned",
    "protected": "protected",
    "protected_by_kind": "protected by",
}


def _format_summary(summary: Mapping[str, Any]) -> str:
    """The plan summary in words and numbers: ``actions: warn 79, none 221; rules: …``."""
    parts = []
    for key, value in summary.items():
        label = _SUMMARY_LABELS.get(key, key.replace("_", " "))
        if isinstance(value, Mapping):
            parts.append(f"{label}: {counts_in_words(value)}")
        else:
            parts.append(f"{label}: {value}")
    return "; ".join(parts)


def _reviews_in_force(store: Any, as_of: Any) -> dict[str, Any]:
    """The admins' review decisions the plan honours today (keeps not expired, current approves)."""
    from atlassian_cleanup.review.store import ReviewStore

    with ReviewStore(store.url) as reviews:
        return reviews.decisions_in_force(as_of.date())


def _queue_reviews(store: Any, plan: Any, run_id: str, as_of: Any) -> Counter[str]:
    """Make the live plan's waiting and approved-but-not-yet-done users the review queue.

    An approved user stays queued until the action is carried out, so the approve still counts
    if the write fails today and is retried tomorrow. Returns the counts for the log.
    """
    import json

    from atlassian_cleanup.decisions.reviews import APPROVE, AWAITING, KEEP, PendingReview
    from atlassian_cleanup.review.store import ReviewStore

    decision = plan["review_decision"]
    queued = plan[
        (decision == AWAITING) | ((decision == APPROVE) & plan["proposed_action"].isin(LIFECYCLE_ACTIONS))
    ]
    entries = []
    for row in queued.itertuples(index=False):
        last_active = json.loads(row.product_last_active or "{}")
        entries.append(
            PendingReview(
                account_id=str(row.account_id),
                email=row.email,
                display_name=row.name,
                rule=str(row.policy_rule),
                action=str(row.planned_action),
                reason=str(row.reason),
                products=tuple(sorted(last_active)),
                last_active={k: (v[:10] if v else None) for k, v in last_active.items()},
                due_on=date.fromisoformat(row.action_date) if row.action_date else None,
            )
        )
    with ReviewStore(store.url) as reviews:
        reviews.queue_pending(entries, run_id=run_id, as_of=as_of.date())
    words = {AWAITING: "awaiting an admin", APPROVE: "approved", KEEP: "kept"}
    return Counter(words[str(value)] for value in decision if value in words)
