"""Requests no rule allows wait for an admin in Airflow's Required Actions, through the real DAGs.

The restore DAG (``dag.test()``) asks; the approval DAG (``dag.test()``) puts the prompt up and
parks in ``awaiting_input``; the answer is given through Airflow's REST API
(``PATCH /api/v2/dags/.../hitlDetails``, what the UI's buttons call), or no answer comes and the
scheduler's own timeout sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``) ends the
wait; the restore DAG's next run carries the answer out against the sandbox. Counted in the
sandbox's call log: restore writes and comments per request.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from atlassian_cleanup.client.hooks import AtlassianSiteHook
from atlassian_cleanup.restore.approval import ANSWERED, ASKED
from atlassian_cleanup.restore.carry_out import resolve_request
from tests.integration import test_live_lifecycle
from tests.integration.test_enforcement import pick
from tests.integration.test_restoration_dag import (  # noqa: F401 - fixtures
    RESTORE_DAY,
    RestoreOrg,
    _states,
    restore_org,
    restore_server,
)
from tools.airflow_env import REPO

pytestmark = pytest.mark.integration

#: Airflow's REST API with login turned off (the fixture of the cleanup DAG's approval tests).
airflow_api = test_live_lifecycle.airflow_api

#: Asks made on the sandbox's fixed dates must still be open on the real clock the prompt uses.
LONG_HOURS = 720


class _Admin:
    """Answers the prompts of the given requests through Airflow's REST API, as the UI's button does.

    With ``choice=None`` nobody answers; instead, once the task is parked, its deadline is moved
    into the past and the scheduler's timeout sweep runs, as a scheduler would when the time is up.
    """

    def __init__(self, api: Any, keys: str | tuple[str, ...], choice: str | None) -> None:
        self.api = api
        self.keys = (keys,) if isinstance(keys, str) else keys
        self.choice = choice
        self.subject: str | None = None
        self.body: str | None = None
        self.status: int | None = None
        self.responder: str | None = None
        self.prompts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._answer, daemon=True)

    def __enter__(self) -> _Admin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _answer(self) -> None:
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session
        from sqlalchemy import select

        while not self._stop.wait(0.2) and len(self.prompts) < len(self.keys):
            with create_session() as session:
                details = session.scalars(select(HITLDetail).where(HITLDetail.responded_at.is_(None))).all()
                parked = [
                    d
                    for d in details
                    if any(k in (d.subject or "") for k in self.keys)
                    and d.task_instance is not None
                    and d.task_instance.state == "awaiting_input"
                ]
                if not parked:
                    continue
                detail, ti = parked[0], parked[0].task_instance
                self.prompts.append(detail.subject)
                self.subject, self.body = detail.subject, detail.body
                if self.choice is None:
                    ti.trigger_timeout = datetime.now(UTC) - timedelta(seconds=1)
                    session.commit()
                    _sweep_timeouts()
                    continue
                path = (
                    f"/api/v2/dags/{ti.dag_id}/dagRuns/{ti.run_id}/taskInstances/{ti.task_id}/"
                    f"{ti.map_index}/hitlDetails"
                )
            response = self.api.patch(path, json={"chosen_options": [self.choice], "params_input": {}})
            self.status = response.status_code
            self.responder = (response.json().get("responded_by") or {}).get("name")


def _sweep_timeouts() -> None:
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()


def _approval_run(org: RestoreOrg, at: datetime) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    org.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(org.policy_path))
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
    assert bag.import_errors == {}
    return bag.dags["atlassian_restore_approval"].test(logical_date=at)


def _journal(org: RestoreOrg, action: str) -> list:
    with org.store() as store:
        return [e for e in store.journal() if e.action == action]


def _contractor_asks(org: RestoreOrg, hours: int = LONG_HOURS, **policy: Any) -> tuple[str, str]:
    """A suspended contractor (a domain no rule allows) asks; the first restore run asks an admin."""
    contractor = pick(org.sandbox, "unmanaged_contractor", 1)[0]
    org.action([contractor], "suspend")
    org.write_policy(approval_timeout_hours=hours, **policy)
    key = org.ask(contractor)
    return contractor, key


@pytest.mark.timeout(240)
def test_approved_request_is_restored_once_and_resolved_naming_the_approver(org: RestoreOrg, airflow_api):
    contractor, key = _contractor_asks(org)
    seq = org.last_seq()
    first = org.run()
    assert str(first.state) == "success", _states(first)
    assert _states(first)["announce_approvals"] == "success"
    assert org.comment_calls(seq)[key] == 1  # "an administrator will review your request"
    assert org.restore_writes(seq) == []

    # The next scheduled run, the request still waiting: no second ask, no second comment.
    seq = org.last_seq()
    second = org.run(RESTORE_DAY + timedelta(minutes=10))
    assert _states(second)["announce_approvals"] == "skipped"
    assert org.comment_calls(seq)[key] == 0
    assert len(_journal(org, ASKED)) == 1

    with _Admin(airflow_api, key, "Approve") as admin:
        approval = _approval_run(org, RESTORE_DAY + timedelta(minutes=11))
    assert str(approval.state) == "success", _states(approval)
    assert admin.status == 200
    assert len(admin.prompts) == 1
    assert key in (admin.subject or "")
    for evidence in (
        contractor,
        "No restore rule allows this account",
        "lift the suspension",
        f"/browse/{key}",
    ):
        assert evidence in (admin.body or ""), evidence
    assert org.restore_writes(seq) == []  # the approval itself writes nothing to Atlassian

    seq = org.last_seq()
    third = org.run(RESTORE_DAY + timedelta(minutes=20))
    assert str(third.state) == "success", _states(third)
    assert [c["account_id"] for c in org.restore_writes(seq)] == [contractor]
    assert org.users()[contractor]["status"] == "active"
    assert org.request_status(key) == "Resolved"
    assert f"approved by {admin.responder}" in org.comments(key)[-1]

    # A re-run restores and comments nothing again (journalled per request).
    seq = org.last_seq()
    assert str(org.run(RESTORE_DAY + timedelta(minutes=30)).state) == "success"
    assert org.restore_writes(seq) == []
    assert org.comment_calls(seq)[key] == 0


@pytest.mark.timeout(240)
def test_rejected_request_is_answered_and_resolved_without_a_restore(org: RestoreOrg, airflow_api):
    contractor, key = _contractor_asks(org)
    assert str(org.run().state) == "success"
    with _Admin(airflow_api, key, "Reject") as admin:
        assert str(_approval_run(org, RESTORE_DAY + timedelta(minutes=1)).state) == "success"
    assert admin.status == 200
    seq = org.last_seq()
    run = org.run(RESTORE_DAY + timedelta(minutes=10))
    assert str(run.state) == "success", _states(run)
    assert org.restore_writes(seq) == []
    assert org.users()[contractor]["status"] == "suspended"
    assert org.request_status(key) == "Resolved"
    assert "did not approve" in org.comments(key)[-1]
    assert [e.evidence["decision"] for e in _journal(org, ANSWERED)] == ["rejected"]


@pytest.mark.timeout(240)
def test_no_answer_in_time_leaves_the_request_open_with_a_comment(org: RestoreOrg, airflow_api):
    # Asked "now", so that the prompt's deadline is an hour away on the real clock.
    now = datetime.now(UTC).replace(microsecond=0)
    _contractor, key = _contractor_asks(org, hours=1)
    assert str(org.run(now).state) == "success"
    with _Admin(airflow_api, key, None) as admin:
        approval = _approval_run(org, now + timedelta(minutes=1))
    assert admin.subject, "the prompt was never put up"
    assert str(approval.state) == "success", _states(approval)
    assert [e.evidence["decision"] for e in _journal(org, ANSWERED)] == ["timed_out"]

    seq = org.last_seq()
    assert str(org.run(now + timedelta(hours=2)).state) == "success"
    assert org.restore_writes(seq) == []
    assert org.request_status(key) != "Resolved"
    assert "No administrator answered your request in time" in org.comments(key)[-1]
    # Said once: the next run neither comments again nor asks again.
    seq = org.last_seq()
    assert str(org.run(now + timedelta(hours=3)).state) == "success"
    assert org.comment_calls(seq)[key] == 0
    assert len(_journal(org, ASKED)) == 1


@pytest.mark.timeout(240)
def test_an_approval_restores_nothing_in_a_dry_run_or_once_the_request_was_closed(
    org: RestoreOrg, airflow_api
):
    contractor, key = _contractor_asks(org)
    other = pick(org.sandbox, "unmanaged_contractor", 2)[1]
    org.action([other], "suspend")
    closed_key = org.ask(other)
    assert str(org.run().state) == "success"
    with _Admin(airflow_api, (key, closed_key), "Approve") as admin:
        assert str(_approval_run(org, RESTORE_DAY + timedelta(minutes=1)).state) == "success"
    assert admin.status == 200
    assert len(admin.prompts) == 2  # one prompt per request, each answered on its own
    # Someone closes one request in JSM before the restore runs.
    with AtlassianSiteHook() as site:
        assert resolve_request(site, closed_key)

    # Dry run: the approval is read, nothing is written.
    org.write_policy(approval_timeout_hours=LONG_HOURS)
    data = org.policy_path.read_text(encoding="utf-8").replace("dry_run: false", "dry_run: true")
    org.policy_path.write_text(data, encoding="utf-8")
    seq = org.last_seq()
    assert str(org.run(RESTORE_DAY + timedelta(minutes=10)).state) == "success"
    assert org.restore_writes(seq) == []
    assert org.comment_calls(seq) == {}

    # Live: the open approved request is restored; the closed one is never read again.
    org.write_policy(approval_timeout_hours=LONG_HOURS)
    seq = org.last_seq()
    assert str(org.run(RESTORE_DAY + timedelta(minutes=20)).state) == "success"
    assert [c["account_id"] for c in org.restore_writes(seq)] == [contractor]
    assert org.users()[other]["status"] == "suspended"
    assert org.comment_calls(seq)[closed_key] == 0
