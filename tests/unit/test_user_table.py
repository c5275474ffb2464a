"""The column-wise user table extract_users hands to compute_inactivity (and its XCom form)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pandas as pd

from atlassian_cleanup.decisions.planner import plan_actions
from atlassian_cleanup.decisions.policy import Policy
from atlassian_cleanup.decisions.records import UserRecord, parse_timestamp
from atlassian_cleanup.decisions.user_table import FORMAT, UserTable, evidence_json

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def record(account_id: str, **fields: object) -> UserRecord:
    base: dict[str, object] = {
        "account_id": account_id,
        "account_type": "atlassian",
        "name": f"User {account_id}",
        "email": f"{account_id}@acme.example",
        "email_domain": "acme.example",
        "status": "active",
        "account_status": "active",
        "membership_status": "active",
        "claim_status": "managed",
        "added_to_org": "2024-03-01T10:00:00Z",
        "platform_roles": [],
        "groups": ["staff"],
        "group_ids": ["g-staff"],
        "product_access": {"confluence": None, "jira": "2026-07-15T09:00:00Z"},
        "last_active": "2026-07-15T09:00:00Z",
        "time_zone": "Europe/Paris",
    }
    base.update(fields)
    return UserRecord(**base)  # type: ignore[typeddict-item]


USERS = [
    record("a"),
    record(
        "b",
        account_type="app",
        email=None,
        email_domain=None,
        status="suspended",
        claim_status=None,
        added_to_org=None,
        platform_roles=["atlassian/site-admin"],
        groups=[],
        group_ids=[],
        product_access={},
        last_active=None,
        time_zone=None,
    ),
    record("c", email="  Carol.Jones@ACME.example ", groups=["staff", "eng"], group_ids=["g1", "g2"]),
    record(
        "d", product_access='{"jira-software": "2026-01-02T03:04:05Z"}', last_active="2026-01-02T03:04:05Z"
    ),
]


def epoch(value: str | None) -> float | None:
    parsed = parse_timestamp(value)
    return parsed.timestamp() if parsed else None


def test_columns_read_back_as_records_with_epoch_timestamps() -> None:
    table = UserTable.from_records(USERS, chunk=3)  # two chunks
    assert len(table) == 4
    assert table.account_ids == ["a", "b", "c", "d"]
    back = list(table.records())
    assert back[0]["groups"] == ["staff"]
    assert back[0]["product_access"] == {"confluence": None, "jira": epoch("2026-07-15T09:00:00Z")}
    assert back[0]["added_to_org"] == epoch("2024-03-01T10:00:00Z")
    assert back[1]["product_access"] == {}
    assert back[1]["added_to_org"] is None
    assert back[1]["platform_roles"] == ["atlassian/site-admin"]
    assert back[2]["group_ids"] == ["g1", "g2"]
    assert back[3]["product_access"] == {"jira-software": epoch("2026-01-02T03:04:05Z")}
    assert [row["status"] for row in back] == ["active", "suspended", "active", "active"]


def test_evidence_is_the_sorted_json_of_product_access_as_reported() -> None:
    table = UserTable.from_records(USERS)
    assert json.loads(table.product_last_active[0]) == {"confluence": None, "jira": "2026-07-15T09:00:00Z"}
    assert table.product_last_active[0] == json.dumps(USERS[0]["product_access"], sort_keys=True)
    assert table.product_last_active[1] == "{}"
    assert json.loads(table.product_last_active[3]) == {"jira-software": "2026-01-02T03:04:05Z"}


def test_evidence_falls_back_when_a_value_contains_the_batch_separator() -> None:
    accesses = [{"b": "x}, {y", "a": None}, {}, {"jira": "2026-01-01T00:00:00Z"}]
    assert evidence_json(accesses) == [json.dumps(access, sort_keys=True) for access in accesses]


def test_json_form_round_trips_through_json_text() -> None:
    table = UserTable.from_records(USERS)
    data = json.loads(json.dumps(table.to_json()))
    assert data["format"] == FORMAT
    again = UserTable.from_json(data)
    assert list(again.records()) == list(table.records())
    assert again.product_last_active == table.product_last_active
    assert again.email_keys() == table.email_keys()


def test_only_emails_whose_comparison_key_differs_are_listed() -> None:
    table = UserTable.from_records(USERS)
    assert table.email_keys() == {2: "carol.jones@acme.example"}


def test_counts_activity_and_changes() -> None:
    table = UserTable.from_records(USERS)
    assert table.value_counts("status") == {"active": 3, "suspended": 1}
    assert table.never_active() == 1
    assert table.has_activity().tolist() == [True, False, True, True]
    table.set_value("account_type", 0, "customer")
    assert table.decoded("account_type") == ["customer", "app", "atlassian", "atlassian"]
    table.extend([record("e", account_type="customer")])
    assert table.value_counts("account_type") == {"app": 1, "atlassian": 2, "customer": 2}


def test_dataframe_cells_left_empty_read_as_none() -> None:
    frame = pd.DataFrame([dict(USERS[0]), {"account_id": "x"}])
    table = UserTable.from_any(frame)
    back = list(table.records())
    assert back[1]["email"] is None
    assert back[1]["groups"] == []
    assert back[1]["product_access"] == {}
    assert math.isnan(table.array("added_to_org")[1])


def test_the_planner_plans_a_table_its_json_form_and_records_alike() -> None:
    table = UserTable.from_records(USERS)
    from_records = plan_actions(USERS, Policy(), AS_OF, api_user_emails=["CAROL.jones@acme.example"])
    from_table = plan_actions(table, Policy(), AS_OF, api_user_emails=["CAROL.jones@acme.example"])
    from_json = plan_actions(
        json.loads(json.dumps(table.to_json())), Policy(), AS_OF, api_user_emails=["CAROL.jones@acme.example"]
    )
    pd.testing.assert_frame_equal(from_records, from_table)
    pd.testing.assert_frame_equal(from_records, from_json)
    assert from_table.loc[2, "protected_by"] == "api_user"
