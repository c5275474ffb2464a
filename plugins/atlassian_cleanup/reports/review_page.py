"""The audit page's two write views: the review queue and restore on demand.

``/review`` lists the people whose first action waits for an admin (with the evidence: products,
last-active dates, rule, reason, due date), filtered by rule or a search, and lets an admin approve
or keep several at once, with a reason and, for a keep, its last day. ``/restore`` triggers the
restore DAG for named accounts: the run validates them again and restores through the one
journalled path, so the page adds no second way to write to Atlassian. Who may do what and the
forgery checks are in :mod:`atlassian_cleanup.reports.page_security`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment

from atlassian_cleanup.decisions.policy_params import RESTORE_ACCOUNTS, RESTORE_REASON
from atlassian_cleanup.reports.page_security import (
    Permissions,
    csrf_token,
    permissions,
    remember_csrf,
    require_write,
)
from atlassian_cleanup.settings import RESTORE_DAG_ID

PermissionsDep = Annotated[Permissions, Depends(permissions)]

#: Where the page's app is mounted (the audit page's URL_PREFIX); the UI's own pages are above it.
_MOUNT = "/atlassian-audit"


def state_url() -> str:
    """The state database's URL, from the policy's ``state_store.conn_id`` as the DAGs read it."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    from atlassian_cleanup.decisions.policy import load_policy
    from atlassian_cleanup.decisions.policy_model import StateStorePolicy
    from atlassian_cleanup.settings import policy_path
    from atlassian_cleanup.store_db import state_url_of

    conn_id = load_policy(policy_path()).state_store.conn_id
    try:
        conn: Any = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        conn = None
    return state_url_of(conn_id, conn, default_conn_id=StateStorePolicy.conn_id)


def max_restores() -> int:
    """The policy's ``restore.max_restores_per_run``: the most accounts one restore run takes."""
    from atlassian_cleanup.decisions.policy import load_policy
    from atlassian_cleanup.settings import policy_path

    return load_policy(policy_path()).restore.max_restores_per_run


def trigger_restore_run(conf: dict[str, Any], user: str) -> str:
    """Create a restore DAG run with ``conf`` as ``user`` (as the UI's trigger button does); its id."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        RESTORE_DAG_ID,
        triggered_by=DagRunTriggeredByType.UI,
        triggering_user_name=user,
        conf=conf,
        logical_date=datetime.now(UTC),
    )
    if run is None:
        raise RuntimeError(f"Airflow did not create a run of {RESTORE_DAG_ID}")
    return str(run.run_id)


def add_review_routes(app: FastAPI, env: Environment, root_of: Any, secure: Any, url: str | None) -> None:
    """Register ``/review`` and ``/restore`` on the audit page's app."""
    import atlassian_cleanup.reports.review_page as this  # looked up per call: tests replace them

    def store() -> Any:
        from atlassian_cleanup.review.store import ReviewStore

        return ReviewStore(url or this.state_url())

    def page(request: Request, perms: Permissions, status: int = 200, **shown: Any) -> Response:
        root = root_of(request)
        token = csrf_token(request)
        rule = request.query_params.get("rule") or None
        search = request.query_params.get("q") or None
        with store() as reviews:
            pending = reviews.pending(rule=rule, search=search)
            rules = sorted({entry.rule for entry in reviews.queued()})
            recent = reviews.recent_decisions(50)
        body = env.get_template("review_page.html").render(
            root=root,
            ui_root=root.removesuffix(_MOUNT),
            perms=perms,
            pending=pending,
            rules=rules,
            rule=rule,
            search=search or "",
            recent=recent,
            token=token,
            restore_dag_id=RESTORE_DAG_ID,
            **shown,
        )
        response = HTMLResponse(body, status_code=status)
        remember_csrf(response, token, request, root or "/")
        return secure(response)

    @app.get("/review", response_class=HTMLResponse)
    def review(request: Request, perms: PermissionsDep) -> Response:
        return page(request, perms, done=request.query_params.get("done"))

    @app.post("/review/decide")
    def decide(
        request: Request,
        perms: PermissionsDep,
        csrf_token: Annotated[str | None, Form()] = None,
        account_id: Annotated[list[str] | None, Form()] = None,
        decision: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        keep_until: Annotated[str, Form()] = "",
    ) -> Response:
        require_write(request, csrf_token, perms.decide, "decide in the review queue")
        try:
            until = date.fromisoformat(keep_until) if keep_until.strip() else None
        except ValueError:
            return page(request, perms, 400, error=f"keep until {keep_until!r} is not a date (YYYY-MM-DD)")
        try:
            with store() as reviews:
                made = reviews.decide(
                    account_id or [],
                    decision=decision,
                    reason=reason,
                    decided_by=perms.user,
                    decided_at=datetime.now(UTC),  # when the admin decided: the wall clock is right
                    keep_until=until,
                )
        except (ValueError, RuntimeError) as exc:
            return page(request, perms, 400, error=str(exc))
        done = f"{decision}: {len(made)} people"
        return RedirectResponse(f"{root_of(request)}/review?done={done}", status_code=303)

    @app.post("/restore")
    def restore(
        request: Request,
        perms: PermissionsDep,
        csrf_token: Annotated[str | None, Form()] = None,
        accounts: Annotated[str, Form()] = "",
        restore_reason: Annotated[str, Form()] = "",
    ) -> Response:
        from atlassian_cleanup.restore.on_demand import OnDemandError, parse_entries

        require_write(request, csrf_token, perms.restore, "restore accounts")
        try:
            entries = parse_entries(accounts, restore_reason, this.max_restores())
        except OnDemandError as exc:
            return page(
                request, perms, 400, restore_error=exc, accounts=accounts, restore_reason=restore_reason
            )
        conf = {RESTORE_ACCOUNTS: [entry.text for entry in entries], RESTORE_REASON: restore_reason.strip()}
        run_id = this.trigger_restore_run(conf, perms.user)
        return page(request, perms, restore_run=run_id, restore_count=len(entries))
