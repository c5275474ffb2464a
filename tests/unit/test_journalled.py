"""The one journalled write path: claim, recover an uncertain claim, write without blind replays, record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atlassian_cleanup.actions.journalled import Journal, WriteResult
from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.client.retry import AtlassianApiError, AtlassianAuthError

AT = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)
USER = "557058:journalled"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(str(tmp_path / "state.db")) as state:
        yield state


def journal(store: StateStore, run_id: str = "run-1") -> Journal:
    return Journal(store, run_id=run_id, at=AT)


def suspended(detail: str = "Suspended.") -> WriteResult:
    return WriteResult(
        "succeeded",
        "done",
        "suspend",
        detail,
        api_status=204,
        event="actioned",
        event_data={"action": "suspend"},
    )


def entry(store: StateStore):
    [only] = store.journal(account_id=USER)
    return only


def test_a_new_claim_is_acted_on_and_completed(store: StateStore) -> None:
    writes = journal(store)
    claim = writes.claim(USER, "suspend")
    assert claim.status == "new"

    result = writes.carry_out(
        USER, claim, suspended, recover=lambda: pytest.fail("a new claim is not recovered")
    )

    assert result.outcome == "succeeded"
    recorded = entry(store)
    assert (recorded.outcome, recorded.result_source, recorded.api_status) == ("succeeded", "api", 204)
    assert store.history([USER])[USER].stage == "actioned"
    assert journal(store, "run-2").claim(USER, "suspend").status == "done"


def test_an_uncertain_claim_whose_write_happened_is_recorded_without_acting(store: StateStore) -> None:
    assert journal(store, "crashed").claim(USER, "suspend").status == "new"  # never recorded
    writes = journal(store)
    claim = writes.claim(USER, "suspend")
    assert claim.status == "uncertain"

    result = writes.carry_out(
        USER,
        claim,
        lambda: pytest.fail("the write already happened: nothing may be written again"),
        recover=lambda: suspended("Confirmed from Atlassian."),
    )

    assert result.detail == "Confirmed from Atlassian."
    recorded = entry(store)
    assert (recorded.outcome, recorded.result_source) == ("succeeded", "recheck")
    assert store.uncertain_entries() == []


def test_an_uncertain_claim_whose_write_did_not_happen_is_acted_on(store: StateStore) -> None:
    journal(store, "crashed").claim(USER, "suspend")
    writes = journal(store)
    claim = writes.claim(USER, "suspend")
    acted: list[str] = []

    def act() -> WriteResult:
        acted.append("suspend")
        return suspended()

    writes.carry_out(USER, claim, act, recover=lambda: None)

    assert acted == ["suspend"]
    assert entry(store).result_source == "recheck"


def test_an_api_error_is_recorded_as_failed_and_a_rejected_credential_raised(store: StateStore) -> None:
    writes = journal(store)

    def refused() -> WriteResult:
        raise AtlassianApiError("HTTP 400 from Atlassian", status=400)

    failed = writes.carry_out(
        USER, writes.claim(USER, "suspend"), refused, failure_detail=lambda e: f"No: {e}"
    )
    assert (failed.outcome, failed.result, failed.api_status) == ("failed", "failed", 400)
    assert entry(store).detail == "No: HTTP 400 from Atlassian"

    def expired() -> WriteResult:
        raise AtlassianAuthError("HTTP 401 from Atlassian", status=401)

    claim = writes.claim(USER, "suspend")  # a failed key may be claimed again
    assert claim.status == "new"
    with pytest.raises(AtlassianAuthError):
        writes.carry_out(USER, claim, expired)
    assert [e.outcome for e in store.journal(account_id=USER)] == ["failed", "failed"]


def test_an_ambiguous_write_is_looked_at_not_replayed(store: StateStore) -> None:
    writes = Journal(store, run_id="run-1", at=AT, write_attempts=3)
    sent: list[int] = []

    def dropped() -> None:
        sent.append(1)
        raise AtlassianApiError("connection dropped", status=None)

    assert writes.write(dropped, happened=lambda: True) is None
    assert sent == [1]

    sent.clear()
    with pytest.raises(AtlassianApiError):
        writes.write(dropped, happened=lambda: False)
    assert len(sent) == 3  # re-sent only after each look said "not there"


def test_an_unrecordable_result_leaves_the_entry_open_for_the_next_run(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = journal(store)
    claim = writes.claim(USER, "suspend")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "complete", broken)
    with pytest.raises(RuntimeError, match="next run will re-check"):
        writes.carry_out(USER, claim, suspended)
    assert [e.outcome for e in store.uncertain_entries()] == ["intent"]
