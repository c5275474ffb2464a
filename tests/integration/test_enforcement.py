"""The enforcement engine against a real sandbox server and a SQLite state store.

Every test starts from a freshly generated org (same seed), so the populations are predictable:
``inactive_*`` / ``active`` managed accounts, ``unmanaged_contractor`` (lifecycle calls forbidden),
``idp_synced`` (SCIM-managed, in the read-only group ``idp-engineering`` that grants Jira) and
``jira_active_confluence_dormant``. Writes are counted in the sandbox's call log: a successful
write is a 2xx answer, or a write that was applied before the connection was cut (``drop_after``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from atlassian_cleanup.actions.enforcement import ActionOutcome, Enforcer
from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.client.hooks import AtlassianAdminHook
from atlassian_cleanup.client.retry import RetryPolicy, begin_atlassian_calls
from atlassian_cleanup.decisions.records import user_record_from_v2
from tools.airflow_env import REPO, connection_env

pytestmark = pytest.mark.integration

AS_OF = date(2026, 11, 26)
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SEED = 1
USERS = 120
_NO_CHAOS = {
    "chaos_429": 0.0,
    "chaos_503": 0.0,
    "chaos_500": 0.0,
    "chaos_drop_before": 0.0,
    "chaos_drop_after": 0.0,
    "latency_ms": 0.0,
    "rate_limit_enabled": False,
}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=USERS, seed=SEED, as_of=AS_OF)) as sb:
        yield sb


@pytest.fixture
def sb(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module's sandbox, reset to a fresh org without chaos, with the connections pointing at it."""
    server.configure(**_NO_CHAOS)
    server.reset(users=USERS, seed=SEED, as_of=AS_OF)
    server.clear_calls()
    for key, value in connection_env(server.info, None).items():
        monkeypatch.setenv(key, value)
    return server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


def hook_factory(max_attempts: int = 8):
    return lambda: AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep(max_attempts=max_attempts))


def enforcer(store: StateStore, *, run_id: str = "run-1", at: datetime = AT, **kwargs: Any) -> Enforcer:
    kwargs.setdefault("concurrency", 4)
    return Enforcer(hook_factory(), store, run_id=run_id, at=at, **kwargs)


def sim_users(sb: Any, population: str | None = None) -> list[dict[str, Any]]:
    params = {"population": population} if population else {}
    response = requests.get(f"{sb.url}/_sim/users", params=params, timeout=30)
    response.raise_for_status()
    return response.json()["users"]


def truth(sb: Any) -> dict[str, dict[str, Any]]:
    return {user["account_id"]: user for user in sim_users(sb)}


def pick(sb: Any, population: str, count: int, *, status: str = "active") -> list[str]:
    found = [
        u["account_id"]
        for u in sim_users(sb, population)
        if u["populations"][0] == population and u["status"] == status
    ]
    assert len(found) >= count, f"need {count} {population} users, the sandbox has {len(found)}"
    return found[:count]


def truth_status(sb: Any, account_id: str) -> str:
    response = requests.get(f"{sb.url}/_sim/users", params={"accountId": account_id}, timeout=30)
    users = response.json()["users"]
    return users[0]["status"] if users else "gone"


def plan_rows(account_ids: list[str], action: str, products: list[str] | None = None) -> list[dict[str, Any]]:
    """Plan rows built the way the planner does: from the v2 search with productAccess."""
    hook = AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep())
    records: dict[str, Any] = {}
    for start in range(0, len(account_ids), 10):
        batch = account_ids[start : start + 10]
        for user in hook.iter_directory_users(filters={"accountIds": batch}, expand=("productAccess",)):
            records[user["accountId"]] = user_record_from_v2(user)
    hook.close()
    rows = []
    for account_id in account_ids:
        record = records[account_id]
        rows.append(
            {
                "account_id": account_id,
                "email": record["email"],
                "name": record["name"],
                "status": record["status"],
                "product_last_active": json.dumps(record["product_access"], sort_keys=True),
                "days_inactive": 120,
                "proposed_action": action,
                "planned_action": action,
                "products_to_remove": list(products or []),
                "warning_lead_days": None,
                "action_date": AS_OF.isoformat(),
                "reason": f"test plan: {action}",
                "rule": "inactive_all_products",
            }
        )
    return rows


def write_calls(sb: Any, since: int = 0) -> list[dict[str, Any]]:
    """Write calls that reached the state: a 2xx answer, or applied before the connection dropped."""
    return [
        call
        for call in sb.calls(since)
        if call["method"] in _WRITE_METHODS
        and not str(call.get("path_template") or "").endswith("/search")
        and call["injected"] in (None, "drop_after")
        and call["status"] is not None
        and 200 <= call["status"] < 300
    ]


def duplicates(calls: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """(account, method + path) pairs written successfully more than once.

    The concrete path, not the template: the lifecycle template ``.../lifecycle/{action}`` covers
    disable and delete, and a membership template covers every group.
    """
    counts = Counter((str(call["account_id"]), f"{call['method']} {call['path']}") for call in calls)
    return {key: count for key, count in counts.items() if count > 1}


def by_id(outcomes: list[ActionOutcome]) -> dict[str, ActionOutcome]:
    return {outcome.account_id: outcome for outcome in outcomes}


def last_seq(sb: Any) -> int:
    calls = sb.calls()
    return calls[-1]["seq"] if calls else 0


# --------------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------------


def test_suspend_then_rerun_writes_nothing(sb: Any, store: StateStore) -> None:
    ids = pick(sb, "inactive_180", 4) + pick(sb, "inactive_400", 2)
    rows = plan_rows(ids, "suspend")

    outcomes = enforcer(store).apply(rows)

    assert [o.account_id for o in outcomes] == ids  # input order
    assert {o.result for o in outcomes} == {"done"}
    assert all(o.performed == "suspend" and o.api_status in (200, 204) for o in outcomes)
    live = truth(sb)
    assert all(live[a]["status"] == "suspended" for a in ids)
    writes = write_calls(sb)
    assert len(writes) == len(ids)
    assert not duplicates(writes)
    history = store.history(ids)
    assert all(history[a].stage == "actioned" and history[a].actioned_action == "suspend" for a in ids)
    entry = store.journal(account_id=ids[0])[0]
    assert entry.before["status"] == "active"
    assert entry.before["groups"]

    # The same rows again, as an Airflow retry (same run) and as the next run (same cycle).
    mark = last_seq(sb)
    for run_id in ("run-1", "run-2"):
        again = enforcer(store, run_id=run_id).apply(rows)
        assert {o.result for o in again} == {"skipped_already_done"}
    assert write_calls(sb, mark) == []
    assert store.write_counts() == {"suspend": len(ids)}


def test_changed_users_are_skipped(sb: Any, store: StateStore) -> None:
    fresh, already = pick(sb, "inactive_90", 2)
    rows = plan_rows([fresh, already], "suspend")
    # After the plan: one user logs in to Jira, the other is suspended by an admin by hand.
    requests.post(
        f"{sb.url}/_sim/activity",
        json={"accountId": fresh, "product": "jira-software", "at": "2026-11-26T10:00:00Z"},
        timeout=30,
    ).raise_for_status()
    hook = AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep())
    hook.suspend_user(already)
    mark = last_seq(sb)

    outcomes = by_id(enforcer(store).apply(rows))

    assert outcomes[fresh].result == "skipped_changed"
    assert "Jira" in outcomes[fresh].detail
    assert outcomes[already].result == "skipped_changed"
    assert "suspended" in outcomes[already].detail
    assert write_calls(sb, mark) == []
    assert truth_status(sb, fresh) == "active"


def test_deactivate_falls_back_to_suspend_for_unmanaged(sb: Any, store: StateStore) -> None:
    managed = pick(sb, "inactive_400", 2)
    contractor = pick(sb, "unmanaged_contractor", 1)
    scim = pick(sb, "idp_synced", 1)
    rows = plan_rows(managed + contractor + scim, "deactivate")

    outcomes = by_id(enforcer(store).apply(rows))

    live = truth(sb)
    for account_id in managed:
        assert outcomes[account_id].result == "done"
        assert outcomes[account_id].performed == "deactivate"
        assert live[account_id]["status"] == "deactivated"
    out = outcomes[contractor[0]]
    assert out.result == "done"
    assert out.performed == "suspend"
    assert "unmanaged account: suspended instead of deactivated" in out.detail.lower()
    assert live[contractor[0]]["status"] == "suspended"
    assert outcomes[scim[0]].performed == "suspend"
    assert "identity provider" in outcomes[scim[0]].detail
    assert store.history(contractor)[contractor[0]].actioned_action == "suspend"
    assert store.history(managed)[managed[0]].actioned_action == "deactivate"
    # The lifecycle endpoint was never tried for the accounts Atlassian does not let us manage.
    disabled = {c["account_id"] for c in sb.calls() if str(c["path"]).endswith("/lifecycle/disable")}
    assert disabled == set(managed)


def test_remove_product_access_keeps_other_products_and_reports_idp_groups(
    sb: Any, store: StateStore
) -> None:
    dormant = pick(sb, "jira_active_confluence_dormant", 2)
    idp_jira, idp_both = pick(sb, "idp_synced", 2)
    rows = plan_rows(dormant, "remove_product_access", ["confluence"])
    rows += plan_rows([idp_jira], "remove_product_access", ["jira"])
    rows += plan_rows([idp_both], "remove_product_access", ["confluence", "jira"])

    outcomes = by_id(enforcer(store).apply(rows))

    live = truth(sb)
    for account_id in dormant:
        out = outcomes[account_id]
        assert out.result == "done"
        assert out.groups_removed == ("confluence-users-acme",)
        assert "confluence-users-acme" not in live[account_id]["groups"]
        assert "jira-software-users-acme" in live[account_id]["groups"]
        assert set(live[account_id]["product_access"]) == {"jira-software"}
        assert live[account_id]["status"] == "active"
    only_idp = outcomes[idp_jira]
    assert only_idp.result == "reported"
    assert only_idp.groups_not_removable == ("idp-engineering",)
    assert "identity provider" in only_idp.detail
    assert only_idp.groups_removed == ()
    assert "idp-engineering" in live[idp_jira]["groups"]
    both = outcomes[idp_both]
    assert both.result == "done"
    assert both.groups_removed == ("confluence-users-acme",)
    assert both.groups_not_removable == ("idp-engineering",)
    assert "Jira" in both.detail
    # The read-only group is reported, never written to.
    idp_group = sb.info["groups"]["idp-engineering"]
    assert not [c for c in sb.calls() if c.get("group_id") == idp_group and c["method"] in _WRITE_METHODS]
    history = store.history(dormant)
    assert history[dormant[0]].actioned_action == "remove_product_access"
    assert store.history([idp_jira]).get(idp_jira) is None  # nothing changed: no state transition

    mark = last_seq(sb)
    again = by_id(enforcer(store, run_id="run-2").apply(rows))
    assert all(again[a].result == "skipped_already_done" for a in [*dormant, idp_both])
    assert again[idp_jira].result == "reported"
    assert write_calls(sb, mark) == []


def test_delete_managed_and_unmanaged(sb: Any, store: StateStore) -> None:
    managed = pick(sb, "inactive_400", 2)
    contractor = pick(sb, "unmanaged_contractor", 1)
    ids = managed + contractor
    assert {o.result for o in enforcer(store).apply(plan_rows(ids, "suspend"))} == {"done"}

    later = AT + timedelta(days=120)
    mark = last_seq(sb)
    outcomes = by_id(enforcer(store, run_id="run-delete", at=later).delete(plan_rows(ids, "delete")))

    live = truth(sb)
    grace_end = (later + timedelta(days=14)).date().isoformat()
    for account_id in managed:
        out = outcomes[account_id]
        assert out.result == "done"
        assert out.performed == "delete"
        assert grace_end in out.detail
        assert "cancel-delete" in out.detail
        assert "14-day" in out.detail
        assert live[account_id]["status"] == "for_deletion"
    assert store.history(managed)[managed[0]].stage == "pending_delete"
    removed = outcomes[contractor[0]]
    assert removed.result == "done"
    assert removed.performed == "remove_from_directory"
    assert "removed the user from the directory instead" in removed.detail
    assert live.get(contractor[0], {}).get("status", "gone") in ("gone", "not_invited")
    assert store.history(contractor)[contractor[0]].stage == "deleted"
    snapshot = next(e for e in store.journal(account_id=contractor[0]) if e.action == "delete").before
    assert snapshot["groups"]
    assert "role_assignments" in snapshot
    assert Counter(c["path"].rsplit("/", 1)[-1] for c in write_calls(sb, mark)) == {
        "delete": 2,
        contractor[0]: 1,
    }

    mark = last_seq(sb)
    again = enforcer(store, run_id="run-delete", at=later).delete(plan_rows(managed, "delete"))
    assert {o.result for o in again} == {"skipped_already_done"}
    assert write_calls(sb, mark) == []


def test_a_user_without_a_visible_address_is_listed_and_the_listing_counts_as_the_warning(
    sb: Any, store: StateStore
) -> None:
    from atlassian_cleanup.actions.enforcement import RecipientNotAddressable

    hidden, refused = pick(sb, "inactive_60", 2)
    rows = plan_rows([hidden, refused], "warn")
    for row in rows:
        row.update(planned_action="suspend", warning_lead_days=14, action_date="2026-12-10")
    rows[0]["email"] = None  # Atlassian shows no address
    sent: list[str] = []

    def sender(row: dict[str, Any]) -> None:
        sent.append(row["account_id"])
        raise RecipientNotAddressable("cannot be reached")  # no address / the relay refuses it

    outcomes = enforcer(store).warn(rows, sender, list_unaddressable=True)
    assert [o.result for o in outcomes] == ["reported", "reported"]
    assert "Listed to the admins in the digest instead (14-day stage)" in outcomes[0].detail
    assert "warning.without_email: action_after_notice" in outcomes[0].detail
    history = store.history([hidden, refused])
    # The listing is recorded as the warning: the notice period starts today.
    assert (history[hidden].stage, history[hidden].first_warned_at) == ("warned", AT)
    # A visible address the relay refused is only reported: warning.without_email is not about it.
    assert refused not in history or history[refused].stage == "active"
    assert "Listed to the admins" not in outcomes[1].detail
    # A rerun does not list the same stage twice (the journal says it is done).
    again = enforcer(store, run_id="run-2").warn(rows, sender)
    assert [o.result for o in again] == ["skipped_already_done", "reported"]
    # hold: only reported, never recorded as a warning.
    held = plan_rows([pick(sb, "inactive_60", 3)[2]], "warn")
    held[0].update(planned_action="suspend", warning_lead_days=14, action_date="2026-12-10", email=None)
    (outcome,) = enforcer(store, run_id="run-3").warn(held, sender, list_unaddressable=False)
    assert outcome.result == "reported"
    assert "Held: never actioned without a warning (warning.without_email: hold)." in outcome.detail
    assert held[0]["account_id"] not in store.history([held[0]["account_id"]])


def test_warn_sends_once_per_bucket(sb: Any, store: StateStore, tmp_path: Path, monkeypatch: Any) -> None:
    from atlassian_cleanup.actions.notifications import WarningSender
    from tools.smtp_sink import SmtpSink

    ids = pick(sb, "inactive_60", 3)
    rows = plan_rows(ids, "warn")
    for row in rows:
        row.update(planned_action="suspend", warning_lead_days=14, action_date="2026-12-10")
    rows[2]["email"] = None
    with SmtpSink(tmp_path / "mail") as sink:
        smtp = connection_env(sb.info, sink.port)["AIRFLOW_CONN_SMTP_DEFAULT"]
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp)
        with WarningSender() as sender:
            outcomes = enforcer(store).warn(rows, sender)
        with WarningSender() as sender:
            again = enforcer(store, run_id="run-2").warn(rows, sender)
        mail = sink.messages()

    # No visible address: reported (never guessed, never a task failure), and reported again next run.
    assert [o.result for o in outcomes] == ["done", "done", "reported"]
    assert "no e-mail address" in outcomes[2].detail
    assert [o.result for o in again] == ["skipped_already_done", "skipped_already_done", "reported"]
    assert sorted(m["To"] for m in mail) == sorted(r["email"] for r in rows[:2])
    history = store.history(ids)
    assert history[ids[0]].stage == "warned"
    assert history[ids[0]].last_warned_lead_days == 14
    assert ids[2] not in history or history[ids[2]].stage == "active"
    assert write_calls(sb) == []


@pytest.mark.parametrize("smtputf8", [True, False], ids=["relay-with-smtputf8", "relay-without-smtputf8"])
def test_international_addresses_are_sent_or_reported_in_audit_and_digest(
    sb: Any, store: StateStore, tmp_path: Path, monkeypatch: Any, smtputf8: bool
) -> None:
    from atlassian_cleanup.actions.notifications import WarningSender, digest_context
    from atlassian_cleanup.outcomes import StageOutcome
    from atlassian_cleanup.reports.audit import audit_rows
    from tools.smtp_sink import SmtpSink

    ids = pick(sb, "inactive_60", 2)
    rows = plan_rows(ids, "warn")
    for row in rows:
        row.update(planned_action="suspend", warning_lead_days=14, action_date="2026-12-10")
    rows[0]["email"] = "anna@bücher.example"  # international domain: IDNA, any relay
    rows[1]["email"] = "jürgen@bücher.example"  # international local part: SMTPUTF8 only
    with SmtpSink(tmp_path / "mail", smtputf8=smtputf8) as sink:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT", connection_env(sb.info, sink.port)["AIRFLOW_CONN_SMTP_DEFAULT"]
        )
        with WarningSender() as sender:
            outcomes = enforcer(store).warn(rows, sender)
        delivered = [rcpt for rcpt, _options in sink.envelopes]

    expected = ["done", "done"] if smtputf8 else ["done", "reported"]
    assert [o.result for o in outcomes] == expected
    if smtputf8:
        assert delivered == [["anna@xn--bcher-kva.example"], ["jürgen@xn--bcher-kva.example"]]
    else:
        assert delivered == [["anna@xn--bcher-kva.example"]]
        assert "SMTPUTF8" in outcomes[1].detail
    sentences = {o.account_id: StageOutcome(o.result, o.detail) for o in outcomes}
    audit = {row["account_id"]: row for row in audit_rows(rows, sentences)}
    assert audit[ids[1]]["result"] == expected[1]
    if not smtputf8:
        assert "does not offer SMTPUTF8" in audit[ids[1]]["outcome"]
        # Reported, not warned: the user stays at the final warning and is never actioned unwarned.
        assert ids[1] not in store.history(ids) or store.history(ids)[ids[1]].stage == "active"
    digest = digest_context(
        plan=rows, outcomes=sentences, run_id="run-1", as_of="2026-11-26", mode="live", audit_file="a.csv"
    )
    assert digest["undeliverable"] == (0 if smtputf8 else 1)


def test_expired_key_stops_the_batch(sb: Any, store: StateStore, monkeypatch: Any) -> None:
    from atlassian_cleanup.client.retry import AtlassianAuthError

    rows = plan_rows(pick(sb, "inactive_90", 2), "suspend")
    info = dict(sb.info, admin_api_key="expired-key")
    monkeypatch.setenv(
        "AIRFLOW_CONN_ATLASSIAN_ADMIN", connection_env(info, None)["AIRFLOW_CONN_ATLASSIAN_ADMIN"]
    )
    with pytest.raises(AtlassianAuthError):
        enforcer(store).apply(rows)
    assert write_calls(sb) == []
    assert store.journal() == []


# --------------------------------------------------------------------------------------------------
# Crash recovery
# --------------------------------------------------------------------------------------------------


def test_uncertain_claims_are_resolved_from_the_live_api(sb: Any, store: StateStore) -> None:
    written, not_written = pick(sb, "inactive_180", 2)
    rows = plan_rows([written, not_written], "suspend")
    hook = AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep())
    # A crashed run: both intents committed, only the first write reached Atlassian.
    for account_id in (written, not_written):
        assert store.claim(run_id="run-0", account_id=account_id, action="suspend", at=AT).status == "new"
    hook.suspend_user(written)
    mark = last_seq(sb)

    outcomes = by_id(enforcer(store).apply(rows))

    assert outcomes[written].result == "done"
    assert "interrupted" in outcomes[written].detail
    assert outcomes[not_written].result == "done"
    assert [c["account_id"] for c in write_calls(sb, mark)] == [not_written]
    assert all(truth_status(sb, a) == "suspended" for a in (written, not_written))
    assert store.uncertain_entries() == []
    assert {e.result_source for e in store.journal(account_id=written) if e.outcome == "succeeded"} == {
        "recheck"
    }

    # delete is not idempotent: an interrupted delete is confirmed by reading, never re-sent.
    later = AT + timedelta(days=120)
    assert store.claim(run_id="run-d0", account_id=written, action="delete", at=later).status == "new"
    hook.delete_user(written)
    mark = last_seq(sb)
    deleted = enforcer(store, run_id="run-d1", at=later).delete(plan_rows([written], "delete"))
    assert deleted[0].result == "done"
    assert "interrupted" in deleted[0].detail
    assert write_calls(sb, mark) == []
    assert store.history([written])[written].stage == "pending_delete"
    hook.close()


def test_chaos_every_write_lands_exactly_once(sb: Any, store: StateStore) -> None:
    suspend = pick(sb, "active", 24)
    deactivate = pick(sb, "inactive_60", 4)
    remove = pick(sb, "jira_active_confluence_dormant", 4)
    rows = plan_rows(suspend, "suspend") + plan_rows(deactivate, "deactivate")
    rows += plan_rows(remove, "remove_product_access", ["confluence"])
    sb.configure(
        chaos_seed=11,
        chaos_429=0.12,
        chaos_503=0.05,
        chaos_500=0.05,
        chaos_drop_before=0.04,
        chaos_drop_after=0.05,
        chaos_retry_after=1,
    )

    # Real waits (short exponential steps; the 1 s the sandbox announces is honoured), so the
    # call log can prove no thread repeats a request before the time a 429/503 announced.
    honest = RetryPolicy(base_delay=0.05, max_backoff=0.2, max_attempts=8)
    outcomes: list[ActionOutcome] = []
    for _attempt in range(3):  # like Airflow task retries: a user may exhaust its attempts once
        engine = Enforcer(
            lambda: AtlassianAdminHook(retry_policy=honest), store, run_id="chaos", at=AT, concurrency=6
        )
        outcomes = engine.apply(rows)
        if all(o.result in ("done", "skipped_already_done") for o in outcomes):
            break
    sb.configure(**_NO_CHAOS)
    early = [(c["method"], c["path"], c["early_by_ms"]) for c in sb.calls() if c.get("early_repeat")]
    assert early == []

    assert all(o.result in ("done", "skipped_already_done") for o in outcomes), [
        (o.account_id, o.detail) for o in outcomes if o.result not in ("done", "skipped_already_done")
    ]
    injected = Counter(c["injected"] for c in sb.calls() if c["injected"])
    assert injected["429"]
    assert injected["500"]
    assert injected["drop_after"]
    assert injected["drop_before"]
    live = truth(sb)
    assert all(live[a]["status"] == "suspended" for a in suspend)
    assert all(live[a]["status"] == "deactivated" for a in deactivate)
    for account_id in remove:
        assert "confluence-users-acme" not in live[account_id]["groups"]
        assert "jira-software-users-acme" in live[account_id]["groups"]
    writes = write_calls(sb)
    assert not duplicates(writes), duplicates(writes)
    assert len(writes) == len(rows)  # one effective write per planned action
    assert store.uncertain_entries() == []


def test_directory_found_once_per_task_and_no_thread_repeats_a_request_early(
    sb: Any, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``directory_id`` every worker thread needs the directory; under 429s they share one
    discovery and one announced wait, so no identical request goes out before its time."""
    admin = json.loads(os.environ["AIRFLOW_CONN_ATLASSIAN_ADMIN"])
    del admin["extra"]["directory_id"]
    monkeypatch.setenv("AIRFLOW_CONN_ATLASSIAN_ADMIN", json.dumps(admin))
    rows = plan_rows(pick(sb, "active", 12), "suspend")
    begin_atlassian_calls()  # the apply task starts: nothing is known about the directory yet
    sb.clear_calls()
    sb.configure(chaos_seed=3, chaos_429=0.6, chaos_retry_after=1, chaos_path_regex="/directories$")
    honest = RetryPolicy(base_delay=0.05, max_backoff=0.2, max_attempts=10)
    engine = Enforcer(
        lambda: AtlassianAdminHook(retry_policy=honest), store, run_id="discover", at=AT, concurrency=6
    )
    outcomes = engine.apply(rows)
    sb.configure(**_NO_CHAOS)

    assert {o.result for o in outcomes} == {"done"}
    listings = [c for c in sb.calls() if c["path"].endswith("/directories")]
    answered = [c for c in listings if c["status"] == 200]
    assert len(answered) == 1  # one discovery for the task, not one per thread
    assert any(c["status"] == 429 for c in listings)  # the chaos did hit it
    assert [c for c in sb.calls() if c.get("early_repeat")] == []


# --------------------------------------------------------------------------------------------------
# SIGKILL in the middle of a run
# --------------------------------------------------------------------------------------------------

_CHILD = """
import json, logging, sys
from datetime import datetime
from atlassian_cleanup.actions.enforcement import Enforcer
from atlassian_cleanup.client.hooks import AtlassianAdminHook
from atlassian_cleanup.client.retry import RetryPolicy
from atlassian_cleanup.actions.state import StateStore

logging.basicConfig(level=logging.WARNING)
args = json.loads(open(sys.argv[1]).read())
store = StateStore(args["db"])
enforcer = Enforcer(
    lambda: AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()),
    store, run_id=args["run_id"], at=datetime.fromisoformat(args["at"]), concurrency=4,
)
print("READY", flush=True)
outcomes = enforcer.apply(args["rows"])
print(json.dumps([o.result for o in outcomes]), flush=True)
"""


def _child_env(sb: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(connection_env(sb.info, None))
    paths = [str(REPO / "plugins"), str(REPO / "include"), str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def _suspend_writes(sb: Any) -> list[dict[str, Any]]:
    return [c for c in write_calls(sb) if str(c["path_template"]).endswith("/suspend")]


def test_sigkill_mid_run_then_rerun_misses_and_doubles_nothing(sb: Any, tmp_path: Path) -> None:
    ids = pick(sb, "active", 30)
    rows = plan_rows(ids, "suspend")
    db = f"sqlite:///{tmp_path / 'state.db'}"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"db": db, "run_id": "killed", "at": AT.isoformat(), "rows": rows}))
    env = _child_env(sb)
    # Slow writes so a kill lands between intent and result, and between users.
    sb.configure(latency_ms=15)
    rng = random.Random(5)

    kills = 0
    for target in sorted(rng.sample(range(3, 26), 2)):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(args)], env=env, stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while len(_suspend_writes(sb)) < target and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        child.wait(timeout=30)
        child.stdout.close()
    assert kills >= 1
    assert len(_suspend_writes(sb)) < len(ids)  # the killed runs left work behind
    # Usually a kill also leaves intents without results (writes in flight): the final run must
    # resolve those from Atlassian's state rather than write again.

    finish = subprocess.run(
        [sys.executable, "-c", _CHILD, str(args)], env=env, capture_output=True, text=True, timeout=60
    )
    sb.configure(latency_ms=0)
    assert finish.returncode == 0, finish.stderr[-2000:]
    results = json.loads(finish.stdout.strip().splitlines()[-1])
    assert set(results) <= {"done", "skipped_already_done"}

    live = truth(sb)
    assert [a for a in ids if live[a]["status"] != "suspended"] == []  # nothing missed
    writes = _suspend_writes(sb)
    assert Counter(c["account_id"] for c in writes) == Counter(ids)  # nothing doubled
    with StateStore(db) as state:
        assert state.uncertain_entries() == []
        assert state.write_counts() == {"suspend": len(ids)}
