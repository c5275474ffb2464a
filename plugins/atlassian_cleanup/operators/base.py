"""What every operator of both DAGs shares: the run's policy, the run's date and mode, the state
store, large XCom inputs, and the audit's run record and Asset event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from atlassian_cleanup.decisions.policy_model import StateStorePolicy
from atlassian_cleanup.operators.dag_setup import fallback_alert_problem
from atlassian_cleanup.outcomes import MODE_DRY_RUN, MODE_LIVE

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.decisions.policy import Policy


def resolve_policy(
    policy_path: str,
    params: Mapping[str, Any] | None,
    *,
    conf: Mapping[str, Any] | None = None,
    known_params: Iterable[str] | None = None,
) -> Policy:
    """Load the policy file and apply this run's DAG params; raise a clear failure when invalid.

    With ``known_params``, every key of the run's ``conf`` must be one of them (or a legacy key):
    a misspelt key fails the run instead of being ignored.

    Raised as :class:`AirflowFailException` so Airflow does not retry a run whose configuration is
    wrong: retrying cannot fix a typo, it only delays the message the admin needs to see.
    """
    from atlassian_cleanup.decisions.policy import (
        LEGACY_PARAMS,
        PolicyError,
        apply_overrides,
        conf_key_problems,
        load_policy,
    )

    if known_params is not None:
        problems = conf_key_problems(conf, [*known_params, *LEGACY_PARAMS])
        if problems:
            raise AirflowFailException(
                "The run's conf has keys this DAG does not know; nothing was called or changed:\n- "
                + "\n- ".join(problems)
            )
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


#: XCom key under which a run's first task publishes the run's policy (see :func:`start_run_policy`).
RUN_POLICY_KEY = "policy"


def run_policy_record(policy: Policy, policy_path: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's policy as it travels between tasks: the effective policy, its SHA-256, the file it
    came from and the params that changed it."""
    from atlassian_cleanup.decisions.policy import active_overrides
    from atlassian_cleanup.reports.audit import policy_fingerprint

    data = policy.to_dict()
    return {
        "policy": data,
        "sha256": policy_fingerprint(data),
        "source": policy_path,
        "overrides": active_overrides(params),
    }


def start_run_policy(task: BaseOperator, policy_path: str, context: Context) -> tuple[Policy, dict[str, Any]]:
    """Resolve the policy file and the run's params once, at the run's first task, and publish it.

    Every later task of the run uses this copy (:func:`policy_of_run`), whatever happens to the
    file meanwhile: the caps approved, the mode shown and the policy in the manifest are the ones
    the plan was made under. The run's conf is checked against the DAG's params first.
    """
    alert_problem = fallback_alert_problem()
    if alert_problem:
        raise AirflowFailException(f"Nothing was called or changed. {alert_problem}")
    dag_run = context.get("dag_run")
    policy = resolve_policy(
        policy_path,
        context["params"],
        conf=getattr(dag_run, "conf", None) or {},
        known_params=task.dag.params.keys() if task.has_dag() else (),
    )
    record = run_policy_record(policy, policy_path, context["params"])
    context["ti"].xcom_push(key=RUN_POLICY_KEY, value=record)
    task.log.info(
        "%s: policy %s (sha256 %s), %s; run overrides: %s",
        task.task_id,
        policy_path,
        record["sha256"],
        mode_of(policy),
        ", ".join(f"{k}={v!r}" for k, v in record["overrides"].items()) or "none",
    )
    return policy, record


def policy_of_run(record: Any) -> Policy:
    """The :class:`Policy` of a record made by :func:`start_run_policy`, checked against its SHA-256."""
    from atlassian_cleanup.decisions.policy import PolicyError, policy_from_dict
    from atlassian_cleanup.reports.audit import policy_fingerprint

    if not isinstance(record, Mapping) or not isinstance(record.get("policy"), Mapping):
        raise AirflowFailException(
            "This run's policy (published by its first task) is missing; nothing was changed. "
            "Clear the whole run from its first task to start it again."
        )
    if policy_fingerprint(record["policy"]) != record.get("sha256"):
        raise AirflowFailException(
            "This run's policy does not match its SHA-256; nothing was changed. Clear the whole run "
            "from its first task to start it again."
        )
    try:
        return policy_from_dict(record["policy"], source="the run's policy")
    except PolicyError as exc:
        raise AirflowFailException(str(exc)) from exc


def resolve_optional_input(value: Any, context: Context) -> Any:
    """Like :func:`resolve_large_input`, but None when the producing task never pushed it."""
    from airflow.sdk.exceptions import XComNotFound

    try:
        return resolve_large_input(value, context)
    except XComNotFound:
        return None


def run_as_of(context: Context) -> datetime:
    """ "Today" for this run: the logical date, or the run-after time for runs without one."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return datetime.fromtimestamp(moment.timestamp(), tz=UTC)


def mode_of(policy: Policy) -> str:
    return MODE_DRY_RUN if policy.dry_run else MODE_LIVE


DEFAULT_STATE_CONN_ID = StateStorePolicy.conn_id


def state_store_url(conn_id: str) -> str:
    """SQLAlchemy URL of the state database named by the policy's ``state_store.conn_id``
    (see :func:`atlassian_cleanup.store_db.state_url_of`)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from atlassian_cleanup.store_db import StateStoreConfigError, state_url_of

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    try:
        return state_url_of(conn_id, conn, default_conn_id=DEFAULT_STATE_CONN_ID)
    except StateStoreConfigError as exc:
        raise AirflowFailException(str(exc)) from None


def open_state_store(policy: Policy, log: Any) -> Any:
    from atlassian_cleanup.actions.state import StateStore

    url = state_store_url(policy.state_store.conn_id)
    store = StateStore(url)
    log.info("state store: %s", _safe_url(url))
    return store


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def wire_large_input(task: BaseOperator, value: Any) -> Any:
    """Accept a large XCom input (the user table, the plan) without making it a template field.

    Airflow renders every template field before ``execute``: a resolved template field is then
    rewritten key-sorted, stringified, scanned for secrets for the "Rendered Template" view and
    serialised again with the task. For a 100,000-row plan that took 20-40 s per task and showed
    nothing useful. The value is resolved in ``execute`` instead (:func:`resolve_large_input`);
    an ``XComArg`` still makes its producer an upstream task, as a template field would.
    """
    from airflow.sdk import XComArg

    if isinstance(value, XComArg):
        XComArg.apply_upstream_relationship(task, value)
    return value


def resolve_large_input(value: Any, context: Context) -> Any:
    """The value of an input wired by :func:`wire_large_input` (an ``XComArg`` is pulled)."""
    from airflow.sdk import XComArg

    return value.resolve(context) if isinstance(value, XComArg) else value


def run_record(
    context: Context, policy_record: Mapping[str, Any] | None, approval: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Who started the run and how, for the manifest, the audit page and the digest.

    ``triggered_by`` is the Airflow user who triggered the run (``DagRun.triggering_user_name``),
    or ``scheduler`` for a scheduled run; ``overrides`` the run params that changed the policy;
    ``approval`` what ``approve_plan`` decided (None when it never ran).
    """
    from atlassian_cleanup.reports.audit import triggered_by

    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    run_type = str(getattr(run_type, "value", run_type) or "") or None  # an enum in the SDK
    return {
        "triggered_by": triggered_by(run_type, getattr(dag_run, "triggering_user_name", None)),
        "run_type": run_type,
        "overrides": dict((policy_record or {}).get("overrides") or {}),
        "policy_file": (policy_record or {}).get("source"),
        "approval": dict(approval) if approval else None,
    }


def announce_audit(task: BaseOperator, context: Context, manifest: Any) -> None:
    """Record the written audit on the task's Asset outlets, so a downstream DAG finds the file.

    Both DAGs' export tasks call this: the event names the CSV, its manifest, the row count, the
    SHA-256 and the mode.
    """
    for outlet in task.outlets:
        context["outlet_events"][outlet].extra = {
            "path": manifest.csv_path,
            "manifest": manifest.csv_path.removesuffix(".csv") + ".manifest.json",
            "rows": manifest.rows,
            "sha256": manifest.sha256,
            "mode": manifest.mode,
        }


def as_list(value: Any) -> list[Any]:
    """A templated field that may hold one XCom value or a list of them, as a list."""
    if value is None:
        return []
    if isinstance(value, Iterable) and not isinstance(value, (str, Mapping)):
        return list(value)
    return [value]


def failed_upstream_tasks(task: BaseOperator, context: Context) -> list[str]:
    """Upstream tasks of ``task`` that failed in this run (for an ``all_done`` audit task)."""
    states = context["ti"].get_task_states(
        dag_id=task.dag_id,
        task_ids=sorted(task.get_flat_relative_ids(upstream=True)),
        run_ids=[context["run_id"]],
    )
    by_task = states.get(context["run_id"], {})
    return sorted(name for name, state in by_task.items() if state in ("failed", "upstream_failed"))
